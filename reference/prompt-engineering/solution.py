"""Zero-shot, few-shot and instruction prompts for a small instruct model (reference solution)."""

from __future__ import annotations

import copy
import inspect
import re

import torch

LABELS = ("positive", "negative")
STYLES = ("zero", "few", "instruction")
torch.set_num_threads(1)  # graders run many jobs side by side: one thread each never contends
SYSTEM = "You are a careful assistant that classifies the sentiment of movie reviews."
QUESTION = "Is the sentiment of this review positive or negative? Answer with one word."
INSTRUCTIONS = "Decide whether the writer of the review below liked the film. " + QUESTION


def user_turn(text: str) -> str:
    return f"Review: {text}\n{QUESTION}"


def zero_shot_messages(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user_turn(text)}]


def few_shot_messages(text: str, shots: list[dict[str, str]]) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM}]
    for shot in shots:
        if shot["text"] == text:
            continue
        messages.append({"role": "user", "content": user_turn(shot["text"])})
        messages.append({"role": "assistant", "content": shot["label"]})
    messages.append({"role": "user", "content": user_turn(text)})
    return messages


def instruction_messages(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{INSTRUCTIONS}\n\nReview: {text}"}]


def parse_label(output: str) -> str | None:
    found = re.search(r"\b(positive|negative)\b", output, re.IGNORECASE)
    return found.group(1).lower() if found else None


class PromptClassifier:
    def __init__(self, model_dir: str) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        parameters = inspect.signature(self.model.forward).parameters  # transformers 5 renames past_key_values
        self._cache_kw = "cache" if "cache" in parameters else "past_key_values"

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def render(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return self._encode(self.render(messages))

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        spaces = len(context) - len(context.rstrip(" "))
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self._encode(context + continuation)
        head = self._encode(context)
        if whole[:len(head)] != head:
            raise ValueError("the context's last token merges with the continuation: split elsewhere")
        tail = whole[len(head):]
        if not tail:
            raise ValueError("the continuation encodes to no tokens")
        return head, tail

    def _heads_and_tails(self, messages: list[dict[str, str]], labels: tuple[str, ...] | list[str],
                         ) -> tuple[list[int], list[list[int]]]:
        prompt = self.render(messages)
        pairs = [self.encode_pair(prompt, label) for label in labels]
        return pairs[0][0], [tail for _, tail in pairs]  # the context ids do not depend on the label

    @torch.no_grad()
    def _scores(self, heads: list[list[int]], tails: list[list[int]]) -> list[list[float]]:
        """scores[i][j]: the summed log-probability of tails[j] after heads[i].

        Each prompt is run once for all its labels, and the token prefix every prompt shares (the system turn,
        the few-shot examples) once for all prompts: its KV cache is copied for each prompt.
        """
        from transformers import DynamicCache

        shared = min(len(head) for head in heads) - 1  # each prompt keeps a token to run: its logits come out
        for head in heads[1:]:
            shared = next((i for i in range(shared) if head[i] != heads[0][i]), shared)
        prefix = DynamicCache()
        if shared:
            self._forward(heads[0][:shared], prefix)
        scores = []
        for head in heads:
            cache = copy.deepcopy(prefix)
            first = torch.log_softmax(self._forward(head[shared:], cache, keep=1)[-1].double(), dim=-1)
            row = []
            for tail in tails:
                score = first[tail[0]]
                if len(tail) > 1:  # the later tokens of a label are predicted from its earlier ones
                    logp = torch.log_softmax(self._forward(tail[:-1], copy.deepcopy(cache)).double(), dim=-1)
                    score = score + logp[torch.arange(len(tail) - 1), torch.tensor(tail[1:])].sum()
                row.append(float(score))
            scores.append(row)
        return scores

    def _forward(self, ids: list[int], cache: object, keep: int = 0) -> torch.Tensor:
        """Logits (tokens, vocab) of ``ids`` run after what ``cache`` holds (which then holds them too)."""
        kwargs = {self._cache_kw: cache, "use_cache": True, "logits_to_keep": keep}
        return self.model(input_ids=torch.tensor([ids]), **kwargs).logits[0]

    def label_logprobs(self, messages: list[dict[str, str]], labels: tuple[str, ...] | list[str] = LABELS,
                       ) -> list[float]:
        head, tails = self._heads_and_tails(messages, labels)
        return self._scores([head], tails)[0]

    def messages(self, text: str, style: str, shots: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
        if style == "few":
            return few_shot_messages(text, shots or [])
        return instruction_messages(text) if style == "instruction" else zero_shot_messages(text)

    def score(self, texts: list[str], style: str = "zero", shots: list[dict[str, str]] | None = None,
              ) -> list[list[float]]:
        if style not in STYLES:
            raise ValueError(f"unknown prompt style {style!r}: zero, few or instruction")
        prompts = [self._heads_and_tails(self.messages(text, style, shots), LABELS) for text in texts]
        return self._scores([head for head, _ in prompts], prompts[0][1]) if prompts else []

    def classify(self, texts: list[str], style: str = "zero", shots: list[dict[str, str]] | None = None,
                 ) -> list[str]:
        return [LABELS[max(range(len(LABELS)), key=row.__getitem__)] for row in self.score(texts, style, shots)]

    @torch.no_grad()
    def generate(self, messages: list[dict[str, str]], max_new_tokens: int = 16, seed: int = 0,
                 max_time_s: float = 10.0, temperature: float = 0.7, top_p: float = 0.9) -> str:
        ids = torch.tensor([self.prompt_ids(messages)])
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                      temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                      max_time=max_time_s, pad_token_id=self.tokenizer.eos_token_id)
        finally:
            torch.random.set_rng_state(generator_state)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
