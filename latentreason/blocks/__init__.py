"""Blocks: what each core's stacks are built from (`block=hrm`, the default, or `block=x_transformers`).

A registered block returns a stack maker, `make_stack(num_layers, hidden_size, num_heads, expansion,
mlp_multiple)`, whose result is called as `stack(state, injection, rotary)` like
`latentreason.cores.blocks.Stack`. `build_model` builds it from `config.block` and hands it to the
core (the core's `make_stack` argument); a core built directly, without one, uses `Stack`.
"""
