# mha_head_counts: the self-attention check ported to otter's OK format
OK_FORMAT = True

test = {'name': 'q11',
 'points': 1,
 'suites': [{'cases': [{'code': '>>> import torch\n'
                                '>>> _ = torch.manual_seed(0)\n'
                                '>>> F = torch.nn.functional\n'
                                '>>> def close(a, b, dtype=torch.float32):\n'
                                '...     tol = 1e-10 if dtype == torch.float64 else 1e-5\n'
                                '...     return a.shape == b.shape and a.dtype == b.dtype and bool(torch.allclose(a, '
                                'b, rtol=tol, atol=tol))\n'
                                '>>> def torch_sdpa(q, k, v, mask=None, is_causal=False):\n'
                                '...     if mask is not None and is_causal:\n'
                                '...         mask = mask & torch.ones(q.shape[-2], k.shape[-2], '
                                'dtype=torch.bool).tril()\n'
                                '...         is_causal = False\n'
                                '...     return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, '
                                'is_causal=is_causal)\n'
                                '>>> def torch_weights(q, k, mask=None, is_causal=False):\n'
                                '...     scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5\n'
                                '...     if is_causal:\n'
                                '...         tri = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()\n'
                                '...         mask = tri if mask is None else mask & tri\n'
                                '...     if mask is not None:\n'
                                '...         scores = scores.masked_fill(~mask, float("-inf"))\n'
                                '...     return torch.softmax(scores, -1).nan_to_num(0.0)\n'
                                '>>> def padding(lengths, s):\n'
                                '...     return torch.arange(s)[None, :] < torch.tensor(lengths)[:, None]\n'
                                '>>> def weights_for(d, dtype=torch.float32):\n'
                                '...     return {n: torch.randn(d, d, dtype=dtype) / d ** 0.5 if n.startswith("w") '
                                'else torch.randn(d, dtype=dtype)\n'
                                '...             for n in ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")}\n'
                                '>>> def torch_mha(w, h, q, k, v, attn_mask=None, key_padding_mask=None):\n'
                                '...     m = torch.nn.MultiheadAttention(q.shape[-1], h, batch_first=True, '
                                'dtype=q.dtype)\n'
                                '...     with torch.no_grad():\n'
                                '...         m.in_proj_weight.copy_(torch.cat([w["w_q"], w["w_k"], w["w_v"]]))\n'
                                '...         m.in_proj_bias.copy_(torch.cat([w["b_q"], w["b_k"], w["b_v"]]))\n'
                                '...         m.out_proj.weight.copy_(w["w_o"])\n'
                                '...         m.out_proj.bias.copy_(w["b_o"])\n'
                                '...     out, wts = m(q, k, v, attn_mask=attn_mask, key_padding_mask=key_padding_mask, '
                                'need_weights=True,\n'
                                '...                  average_attn_weights=False)\n'
                                '...     return out.detach(), wts.detach()\n'
                                '>>> def student_mha(cls, d, h, w, q, k, v, **kw):\n'
                                '...     mha = cls(d, h)\n'
                                '...     mha.load_weights(dict(w))\n'
                                '...     return mha.forward(q, k, v, **kw)\n'
                                '>>> def sdpa_ok(fn, q, k, v, **kw):\n'
                                '...     out, wts = fn(q, k, v, **kw)\n'
                                '...     return close(out, torch_sdpa(q, k, v, **kw), q.dtype) and close(wts, '
                                'torch_weights(q, k, **kw), q.dtype)\n'
                                '>>> w, x = weights_for(8), torch.randn(2, 4, 8)\n'
                                '>>> for h in (1, 2, 8):\n'
                                '...     out, wts = student_mha(MultiHeadAttention, 8, h, w, x, x, x)\n'
                                '...     t_out, t_wts = torch_mha(w, h, x, x, x)\n'
                                '...     assert close(out, t_out) and close(wts, t_wts)',
                        'hidden': True,
                        'locked': False,
                        'name': 'mha_head_counts'}],
             'scored': True,
             'setup': '',
             'teardown': '',
             'type': 'doctest'}]}
