"""Translation with a Transformer encoder-decoder: masks, teacher forcing and greedy decoding.

The model of "Attention Is All You Need" (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762),
as The Annotated Transformer builds it (https://nlp.seas.harvard.edu/annotated-transformer/): an
ENCODER reads the whole source sentence; a DECODER writes the target one token at a time, attending to
the tokens it has written so far (causal self-attention) and to the encoder's output (cross-attention).
Build it with ``torch.nn.Transformer`` (https://pytorch.org/docs/stable/generated/torch.nn.Transformer.html)
or with your own layers; what is graded is the seq2seq machinery around the layers.

THE DATA. Token ids, not text: the grader tokenizes (source and target have vocabularies of their
own) and detokenises your output to score it with BLEU (sacrebleu). Ids 0, 1, 2 are special in both
vocabularies: PAD = 0 (padding), BOS = 1 (begin of sentence), EOS = 2 (end of sentence). A source
sequence is just its tokens; a target sequence is its tokens, and the model learns to end it with EOS.
Offline the pairs are numbers written out in English and Spanish ("three hundred and twenty-one" ->
"trescientos veintiuno"): the model must learn to reorder, merge and agree, and is graded on numbers
it never saw in training. Source and target lengths differ: never assume they are equal.

MASKS. Both are BOOLEAN with True = "may NOT attend" (torch.nn.Transformer's convention):
  - the PADDING mask of a batch of ids is ``ids == pad_id``, shape (batch, length); give the source's
    to the encoder's self-attention (``src_key_padding_mask``) AND to the decoder's cross-attention
    (``memory_key_padding_mask``): padding must change nothing, anywhere. Giving the decoder input's
    padding mask to the decoder self-attention (``tgt_key_padding_mask``) is allowed and changes nothing
    at real positions;
  - the CAUSAL mask of the decoder is (T, T) with True above the diagonal (query i may see keys j <= i).

TEACHER FORCING. ``labels`` = the target tokens followed by EOS, padded with PAD: (batch, T).
The decoder input is the labels SHIFTED RIGHT: BOS first, then labels[:, :-1]; the decoder predicts
labels[:, t] from decoder_input[:, :t + 1], i.e. from BOS and the true tokens before t. The loss is
the mean cross-entropy over the NON-PAD label positions (EOS counts; padding does not): the sum over
those positions divided by their number, over the whole batch (``F.cross_entropy(..., ignore_index=PAD)``).
Without the shift (or without the causal mask) the decoder reads the token it must predict: the
training loss falls to almost 0 and the model translates nothing.

ARCHITECTURE (fixed, so the grader can load the same weights into your model and into its own):
    x = embed(ids) * sqrt(d_model) + P[:length];  dropout(x)          (for the source and the target)
    P[pos, 2i] = sin(pos / 10000^(2i / d_model)),  P[pos, 2i + 1] = cos(pos / 10000^(2i / d_model))
    memory = encoder(dropout(x_src))      logits = generator(decoder(dropout(x_tgt), memory))
with torch.nn.Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward,
dropout, batch_first=True): post-norm layers, ReLU, LayerNorm eps 1e-5, and a final LayerNorm after the
encoder stack and after the decoder stack, as nn.Transformer has. ``generator`` is nn.Linear(d_model,
tgt_vocab_size) (no softmax). ``weights()`` / ``load_weights()`` use these state-dict names:
    src_embed.weight, tgt_embed.weight, generator.weight, generator.bias, and nn.Transformer's own
    under "transformer." (transformer.encoder.layers.0.self_attn.in_proj_weight, ...,
    transformer.encoder.norm.weight, transformer.decoder.layers.1.multihead_attn.out_proj.bias, ...)
The positional table is not a weight (register it with ``persistent=False``).

GREEDY DECODING. Start every sequence with BOS; at each step append the argmax of the last position's
logits; a sequence is FINISHED when it produces EOS, and the tokens it would produce after that are
ignored; stop when every sequence has finished or after max_len steps. The whole batch is decoded
together (one encoder pass, one decoder pass per step), and a sequence's result does not depend on the
others in its batch. Decode without dropout (eval mode) and without gradients.

TRAINING (fit): Adam(lr=lr, betas=(0.9, 0.98), eps=1e-9) on ``self.parameters()``, a constant learning
rate (no warm-up, no clipping, no label smoothing), one mini-batch of ``batch_size`` pairs per step
(sample them as you like, seeded from ``seed``; when there are at most ``batch_size`` pairs every step
uses all of them), in train mode (dropout on). Seed everything random in fit from ``seed``
(``torch.manual_seed(seed)`` at its start does it): the same seed gives the same run, another seed
another run. The grader trains your model (200 steps of 32 pairs on the CPU), reads its weights and decodes
numbers you never trained on with its own greedy decoding: BLEU about 45 after 200 steps, 80 after 600.

Only plain data crosses the sandbox boundary: tensors, lists of ints, floats, dicts of tensors; the
model itself stays in the sandbox.
"""

from __future__ import annotations

import torch
from torch import nn

PAD, BOS, EOS = 0, 1, 2


def padding_mask(ids: torch.Tensor, pad_id: int = PAD) -> torch.Tensor:
    """(batch, length) int64 ids -> (batch, length) bool, True where ``ids == pad_id``."""
    raise NotImplementedError


def causal_mask(size: int) -> torch.Tensor:
    """(size, size) bool, True where the key comes after the query (column j > row i)."""
    raise NotImplementedError


def shift_right(labels: torch.Tensor, bos_id: int = BOS) -> torch.Tensor:
    """The decoder input for ``labels`` (batch, T): ``[bos_id, labels[:, 0], ..., labels[:, T - 2]]`` per row.

    Same shape and dtype as ``labels``; ``labels`` itself is left unchanged.
    """
    raise NotImplementedError


def make_batch(src_seqs: list[list[int]], tgt_seqs: list[list[int]], pad_id: int = PAD,
               eos_id: int = EOS) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a list of (source, target) pairs into ``(src, labels)``, both int64.

    src: (batch, S), S = the longest source; each source's tokens, then pad_id.
    labels: (batch, T), T = the longest target + 1; each target's tokens, then eos_id, then pad_id.
    An empty target is allowed (its labels are just eos_id).

    Raises:
        ValueError: no pairs, different numbers of sources and targets, or an empty source.
    """
    raise NotImplementedError


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder Transformer; the checks call it like this:

        model = Seq2SeqTransformer(src_vocab_size, tgt_vocab_size, d_model=64, nhead=4, ...)
        model.load_weights(state); model.weights(); model.eval() / model.train()
        memory = model.encode(src); logits = model.decode(decoder_input, memory, src)
        logits = model.forward(src, decoder_input); loss = model.loss(src, labels)
        model.greedy_decode(src, max_len=20); losses = model.fit(src_seqs, tgt_seqs, steps=200, seed=0)
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, d_model: int = 64, nhead: int = 4,
                 num_encoder_layers: int = 2, num_decoder_layers: int = 2, dim_feedforward: int = 128,
                 dropout: float = 0.1, max_len: int = 64) -> None:
        """Create the embeddings, the positional table for ``max_len`` positions, the Transformer, the generator."""
        super().__init__()
        raise NotImplementedError

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Load a state dict with the names the module docstring lists (every name, nothing extra)."""
        raise NotImplementedError

    def weights(self) -> dict[str, torch.Tensor]:
        """The model's weights under those names, as CPU tensors (copies, not views of the parameters)."""
        raise NotImplementedError

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        """(batch, S) source ids -> memory (batch, S, d_model), with the source padding mask."""
        raise NotImplementedError

    def decode(self, decoder_input: torch.Tensor, memory: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """(batch, T) decoder input, its memory and source ids -> logits (batch, T, tgt_vocab_size).

        Causal mask on the decoder self-attention; the source padding mask on the cross-attention.
        """
        raise NotImplementedError

    def forward(self, src: torch.Tensor, decoder_input: torch.Tensor) -> torch.Tensor:
        """decode(decoder_input, encode(src), src): (batch, T, tgt_vocab_size) logits."""
        raise NotImplementedError

    def loss(self, src: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Teacher-forced loss: a 0-dim float tensor, the mean cross-entropy over the non-pad labels.

        The decoder input is ``shift_right(labels)``; ``labels`` come from ``make_batch``.
        """
        raise NotImplementedError

    def greedy_decode(self, src: torch.Tensor, max_len: int = 20) -> list[list[int]]:
        """Greedy translations of a batch of padded sources (batch, S), one list of ids per source.

        Each list holds the tokens produced before EOS: without BOS, without EOS, at most ``max_len``
        tokens (a sequence that produces no EOS within max_len steps keeps all max_len of them). The
        argmax runs over the whole target vocabulary (excluding PAD and BOS from it is allowed too: a
        trained model never picks them). Decodes in eval mode, without gradients.

        Raises:
            ValueError: max_len < 1.
        """
        raise NotImplementedError

    def fit(self, src_seqs: list[list[int]], tgt_seqs: list[list[int]], steps: int, batch_size: int = 64,
            lr: float = 3e-3, seed: int = 0, device: str = "cpu") -> list[float]:
        """Train for exactly ``steps`` Adam steps with teacher forcing; return each step's loss (Python floats).

        Batches come from ``make_batch`` and the loss from ``self.loss``. Train on ``device`` ("cuda" under
        the grader's gpu profile) and leave the model on the CPU, in eval mode, at the end.
        """
        raise NotImplementedError
