"""Cache schedules on a PyTorch DiT by hooks (docs/schedule.md semantics, as runtime/cache.c runs them).

    with ebcache.torch.apply_schedule(model, "fora2.schedule"):
        samples = diffusion.p_sample_loop(model.forward_with_cfg, ...)   # the k-th model call is step k

While the context is open the instance's forward methods are replaced (instance attributes, restored on
exit): the model's forward counts steps and divides ε by the step's scale; each block's attention and MLP
module computes, returns its cached pre-gate output (reuse) or a Taylor forecast; a block inside a
skipped run (Δ-DiT) returns its input, the run's first block adds the cached residual. The block's own
forward still runs the adaLN modulation and adds the returned output through the current gate, which is
the engine's `x += gate_t ⊙ cached`.
"""
import math
import os
import sys

import numpy as np
import torch

from ebcache.schedule import Row, Schedule, ScheduleError, read_schedule


class Layout:
    """Where a DiT keeps what the hooks need: `blocks` (the block modules in order), the attribute names
    of each block's attention and MLP modules, the positional / keyword slots of the forward's timestep
    and labels, the ε channel count and the output channel count."""

    def __init__(self, kind, blocks, attn, mlp, t_kw, y_kw, in_channels, out_channels, null_class):
        self.kind, self.blocks, self.attn, self.mlp = kind, list(blocks), attn, mlp
        self.x_kw = "x" if kind == "official" else "hidden_states"  # the tokens' name in a block's forward
        self.t_kw, self.y_kw = t_kw, y_kw
        self.in_channels, self.out_channels, self.null_class = in_channels, out_channels, null_class

    @property
    def depth(self):
        return len(self.blocks)

    def config(self, model):
        """The configuration attributes ebcache writes (input_size, patch_size, …, learn_sigma)."""
        if self.kind == "official":
            proj = model.x_embedder.proj
            p, D = proj.kernel_size[0], proj.out_channels
            tokens = model.pos_embed.shape[1]
            heads = getattr(model, "num_heads", None) or getattr(self.blocks[0].attn, "num_heads")
            size = math.isqrt(tokens) * p
        else:
            cfg = model.config
            p, heads, size = cfg.patch_size, cfg.num_attention_heads, cfg.sample_size
            D = cfg.num_attention_heads * cfg.attention_head_dim
        return {"input_size": size, "patch_size": p, "in_channels": self.in_channels, "hidden_size": D,
                "depth": self.depth, "num_heads": heads, "num_classes": self.null_class,
                "learn_sigma": int(self.out_channels == 2 * self.in_channels)}

    def call(self, model, x, t, y):
        """The model's raw output on x (B, C, H, W), t (B), y (B), as a tensor."""
        if self.kind == "official":
            return model.forward(x, t, y)
        return _sample(model(x, timestep=t, class_labels=y, return_dict=False))

    def arg(self, args, kwargs, pos, kw):
        return args[pos] if len(args) > pos else kwargs.get(kw)

    def probe(self, block, args, kwargs):
        """Block `block`'s modulated attention input LN(x)·(1 + scale_msa) + shift_msa, computed through
        the block's own modules (for a step that does not run its attention)."""
        x = self.arg(args, kwargs, 0, self.x_kw)
        if self.kind == "official":
            c = self.arg(args, kwargs, 1, "c")
            shift, scale = block.adaLN_modulation(c).chunk(6, dim=1)[:2]
            return block.norm1(x) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)
        out = block.norm1(x, kwargs.get("timestep"), kwargs.get("class_labels"), hidden_dtype=x.dtype)
        return out[0]


def _compiled(module):
    """True for torch.compile's wrapper (PyTorch 2.x); torch 1.13 has none, nor does a process that never
    imported dynamo."""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    return eval_frame is not None and isinstance(module, getattr(eval_frame, "OptimizedModule", ()))


def model_layout(model):
    """The Layout of the official DiT class or diffusers' DiTTransformer2DModel; TypeError otherwise."""
    blocks = getattr(model, "blocks", None)
    if blocks is not None and all(hasattr(b, a) for b in blocks for a in ("attn", "mlp", "adaLN_modulation")):
        C = model.in_channels
        Co = getattr(model, "out_channels", C)
        table = model.y_embedder.embedding_table
        return Layout("official", blocks, "attn", "mlp", "t", "y", C, Co, table.num_embeddings - 1)
    blocks = getattr(model, "transformer_blocks", None)
    if blocks is not None and all(hasattr(b, a) for b in blocks for a in ("attn1", "ff", "norm1")):
        cfg = model.config
        C = cfg.in_channels
        Co = cfg.out_channels if cfg.out_channels is not None else C
        return Layout("diffusers", blocks, "attn1", "ff", "timestep", "class_labels", C, Co,
                      cfg.num_embeds_ada_norm)
    raise TypeError(f"{type(model).__name__} is neither the official DiT (blocks with attn, mlp, "
                    "adaLN_modulation) nor diffusers' DiTTransformer2DModel (transformer_blocks with attn1, ff)")


def as_schedule(schedule):
    """A Schedule from a Schedule, a path or the table's text."""
    if isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, (str, os.PathLike)) and str(schedule).lstrip().startswith("# ebcache schedule"):
        return Schedule.parse(str(schedule))
    return read_schedule(schedule)


def all_compute(steps):
    """A table that computes every block at every step (the uncached run)."""
    return Schedule(steps=steps, rows=[Row(k, 0, None, "C", "C", 1.0) for k in range(steps)], method="none")


class Plan:
    """A schedule expanded for a model of `depth` blocks and checked as the engine checks it: every reuse
    or forecast follows a compute of that module, a skipped run follows a step that ran all its blocks,
    `S` stands in both columns."""

    def __init__(self, schedule, depth):
        self.S, self.L = schedule.steps, depth
        self.policy = schedule.policy
        if self.policy is not None:
            if any(r.attn != "C" or r.mlp != "C" for r in schedule.rows):
                raise ScheduleError(f"{self.policy.kind}: with a policy every row must compute (C C)")
            if self.policy.kind == "fbcache" and self.policy.blocks >= depth:
                raise ScheduleError(f"fbcache: blocks={self.policy.blocks} leaves none of the {depth} blocks to cache")
        self.acts = schedule.actions(depth)
        self.scale = schedule.step_scale()
        self.t = schedule.step_t()
        self.cap = {}              # (block, module) -> factors kept: 1 for R, k+1 for Tk, 0 when never needed
        self.runs = []             # per step: the skipped runs (lo, hi) it uses
        self.record = []           # per step: the runs whose residual it stores (it runs them and a later step uses them)
        computed = set()
        ran_all = set()
        for k, acts in enumerate(self.acts):
            runs, b = [], 0
            while b < depth:
                a, m = acts[b]
                if (a == "S") != (m == "S"):
                    raise ScheduleError(f"step {k}: block {b} skips only one module (S needs both columns)")
                if a == "S":
                    e = b
                    while e < depth and acts[e][0] == "S":
                        e += 1
                    if (b, e) not in ran_all:
                        raise ScheduleError(f"step {k}: blocks {b}-{e - 1} are skipped before a step ran them all")
                    runs.append((b, e))
                    b = e
                    continue
                for mod, act in ((0, a), (1, m)):
                    if act == "C":
                        computed.add((b, mod))
                    elif (b, mod) not in computed:
                        raise ScheduleError(f"step {k}: block {b} {('attn', 'mlp')[mod]} {act} before any compute")
                    else:
                        need = 1 if act == "R" else int(act[1:]) + 1
                        self.cap[(b, mod)] = max(self.cap.get((b, mod), 0), need)
                b += 1
            self.runs.append(runs)
            ran = [acts[b][0] != "S" for b in range(depth)]
            ran_all |= {(lo, hi) for lo in range(depth) for hi in range(lo + 1, depth + 1) if all(ran[lo:hi])}
        used = {r for runs in self.runs for r in runs}
        for k, acts in enumerate(self.acts):
            later = {r for runs in self.runs[k + 1:] for r in runs}
            self.record.append([r for r in used & later if all(acts[b][0] != "S" for b in range(*r))])

    def flop_fraction(self, config, skipped=None):
        """Executed over uncached multiply-accumulates, counted as eb_macs_split / eb_plan_step_macs do
        (docs/schedule.md); skipped[k] = 1 where a dynamic policy served step k (None: none did)."""
        D, p = config["hidden_size"], config["patch_size"]
        T = (config["input_size"] // p) ** 2
        Co = config["in_channels"] * (2 if config["learn_sigma"] else 1)
        fixed = T * D * config["in_channels"] * p * p + 256 * D + D * D + 2 * D * D + T * D * p * p * Co
        adaln, attn, mlp = 6 * D * D, T * 4 * D * D + 2 * T * T * D, T * 8 * D * D
        macs = 0.0
        for k, acts in enumerate(self.acts):
            macs += fixed
            served = skipped is not None and skipped[k]
            if served and self.policy.kind == "teacache":
                macs += adaln  # block 0's probe
                continue
            for a, m in acts[:self.policy.blocks] if served else acts:
                if a != "S":
                    macs += adaln + (attn if a == "C" else 0) + (mlp if m == "C" else 0)
        return macs / (self.S * (fixed + self.L * (adaln + attn + mlp)))


class ScheduleHooks:
    """The hooks of one schedule on one model; a context manager (apply_schedule returns one). `step` is
    the number of model calls so far. `observer`, when given, sees every step (ebcache.torch.record)."""

    def __init__(self, model, schedule=None, observer=None, check_timesteps=True, steps=None):
        if _compiled(model) or any(_compiled(b) for b in getattr(model, "blocks", None) or ()):
            # dynamo guards on the hooks' Python state (the step, the table's action), so every step
            # recompiles until torch._dynamo's recompile limit, then runs eagerly: no gain, minutes lost
            raise TypeError("apply_schedule: the model (or a block) is a torch.compile module; the schedule's "
                            "per-step decisions recompile it at every step: give the uncompiled model")
        self.model = model
        self.layout = model_layout(model)
        self.schedule = as_schedule(schedule) if schedule is not None else None
        if self.schedule is None and steps is None:
            raise ValueError("give a schedule (or, uncached, the number of steps)")
        self.plan = Plan(self.schedule or all_compute(steps), self.layout.depth)
        self.cached = self.schedule is not None
        self.check_timesteps = check_timesteps and self.cached
        self.observer = observer
        self._saved = []

    # -- the state of a run ------------------------------------------------
    def _reset(self):
        self.step, self.current = 0, None
        self.in_cfg = False
        self.factors = {slot: [] for slot in self.plan.cap}   # TaylorSeer factors f_0.. per module
        self.last = {}                                        # step of each module's last compute
        self.residual, self.run_input = {}, {}
        self.probe_step = -1            # the step whose block-0 probe the observer has seen
        # dynamic policies: TeaCache's accumulated change and previous probe, first-block cache's
        # previous first-blocks residual, the residual that replaces the cached blocks, this step's decision
        self.accumulated, self.prev_probe, self.prev_first = 0.0, None, None
        self.policy_residual, self.policy_input, self.policy_skip = None, None, False
        self.skipped = []               # per step: 1 when the policy served it from the residual

    def __enter__(self):
        self._reset()
        L = self.layout
        self._patch(self.model, "forward", self._model_forward)
        if hasattr(self.model, "forward_with_cfg"):
            self._patch(self.model, "forward_with_cfg", self._cfg_forward)
        for b, block in enumerate(L.blocks):
            if self.plan.policy is not None:
                self._patch(block, "forward", self._policy_block_forward(b, block))
            elif any(self.plan.runs) or self.observer is not None:
                self._patch(block, "forward", self._block_forward(b, block))
            for mod, name in ((0, L.attn), (1, L.mlp)):
                if (b, mod) in self.plan.cap or self.observer is not None:  # cap: a later step reuses or forecasts it
                    self._patch(getattr(block, name), "forward", self._module_forward(b, mod))
        if self.observer is not None:  # outermost: the tokens entering the first block and leaving the last
            for b in sorted({0, L.depth - 1}):
                self._patch(L.blocks[b], "forward", self._observe_tokens(b))
        return self

    def __exit__(self, *exc):
        for obj, name, had, old in reversed(self._saved):
            if had:
                setattr(obj, name, old)
            else:
                delattr(obj, name)
        self._saved = []
        return False

    def _patch(self, obj, name, fn):
        had = name in vars(obj)
        self._saved.append((obj, name, had, vars(obj).get(name)))
        original = getattr(obj, name)
        setattr(obj, name, fn(original))

    # -- the model: steps and the ε scale -----------------------------------
    def _model_forward(self, original):
        def forward(*args, **kwargs):
            k = self.step
            if k >= self.plan.S:
                raise RuntimeError(f"model call {k + 1}: the schedule has {self.plan.S} steps")
            if self.check_timesteps:
                t = self.layout.arg(args, kwargs, 1, self.layout.t_kw)
                t0 = int(torch.as_tensor(t).reshape(-1)[0])
                if t0 != self.plan.t[k]:
                    raise ScheduleError(f"step {k}: the model is called at t = {t0}, the schedule's row says "
                                        f"t = {self.plan.t[k]} (another respacing?)")
            self.current = k
            if self.observer:
                self.observer.begin(k, args, kwargs, self.layout)
            out = original(*args, **kwargs)
            self.step = k + 1
            if self.observer:
                self.observer.output(k, _sample(out))
            return out if self.in_cfg else self._scaled(out, k, guided=False)
        return forward

    def _cfg_forward(self, original):
        def forward_with_cfg(*args, **kwargs):
            self.in_cfg = True
            try:
                out = original(*args, **kwargs)
            finally:
                self.in_cfg = False
            return self._scaled(out, self.step - 1, guided=True)
        return forward_with_cfg

    def _scaled(self, out, k, guided):
        """ε (the first C output channels) divided by step k's scale, in float32 as the engine does;
        guided: the output of forward_with_cfg (else of forward)."""
        s = float(np.float32(self.plan.scale[k]))
        if s != 1.0:
            C = self.layout.in_channels
            out = _with_sample(out, lambda o: torch.cat([o[:, :C] / s, o[:, C:]], dim=1))
        if self.observer:
            self.observer.eps(k, _sample(out), guided)
        return out

    # -- blocks: skipped runs ------------------------------------------------
    def _block_forward(self, b, block):
        def wrap(original):
            def forward(*args, **kwargs):
                k = self.current
                x = self.layout.arg(args, kwargs, 0, self.layout.x_kw)
                for lo, hi in self.plan.runs[k]:
                    if lo == b:
                        if self.observer and b == 0:
                            self._observe_probe(k, self.layout.probe(block, args, kwargs))
                        return x + self.residual[(lo, hi)]
                    if lo < b < hi:
                        return x
                for r in self.plan.record[k]:
                    if r[0] == b:
                        self.run_input[r] = x
                out = original(*args, **kwargs)
                for r in self.plan.record[k]:
                    if r[1] == b + 1:
                        self.residual[r] = out - self.run_input.pop(r)
                return out
            return forward
        return wrap

    def _observe_tokens(self, b):
        last = self.layout.depth - 1

        def wrap(original):
            def forward(*args, **kwargs):
                if b == 0:
                    self.observer.tokens_in(self.current, self.layout.arg(args, kwargs, 0, self.layout.x_kw))
                out = original(*args, **kwargs)
                if b == last:
                    self.observer.tokens_out(self.current, out)
                return out
            return forward
        return wrap

    def _observe_probe(self, k, p):
        self.probe_step = k
        self.observer.probe(k, p)

    # -- blocks: dynamic policies (docs/schedule.md, as runtime/cache.c) ---------
    def _policy_block_forward(self, b, block):
        pol, L = self.plan.policy, self.layout.depth

        def wrap(original):
            def forward(*args, **kwargs):
                k = self.current
                x = self.layout.arg(args, kwargs, 0, self.layout.x_kw)
                if pol.kind == "teacache" and b == 0:
                    probe = self.layout.probe(block, args, kwargs)
                    if self.observer:
                        self._observe_probe(k, probe)
                    must = k == 0 or k == self.plan.S - 1 or self.prev_probe is None
                    change = 0.0 if must else _rel_l1(probe, self.prev_probe)
                    self.policy_skip = self._teacache_skips(change, must)
                    self.prev_probe = probe
                    self.skipped.append(int(self.policy_skip))
                    if self.policy_skip:
                        return x + self.policy_residual
                    self.policy_input = x
                elif pol.kind == "fbcache" and b == 0:
                    self.policy_skip, self.policy_input = False, x
                elif pol.kind == "fbcache" and b == pol.blocks:
                    first = x - self.policy_input
                    self.policy_skip = self.prev_first is not None and _rel_l1(first, self.prev_first) < pol.threshold
                    self.skipped.append(int(self.policy_skip))
                    if self.policy_skip:
                        return x + self.policy_residual
                    self.prev_first, self.policy_input = first, x
                elif self.policy_skip:
                    return x
                out = original(*args, **kwargs)
                if b == L - 1:
                    self.policy_residual = out - self.policy_input
                return out
            return forward
        return wrap

    def _teacache_skips(self, change, must):
        """eb_teacache_skip: the rescaled change accumulates; below the threshold the step is skipped."""
        if must:
            self.accumulated = 0.0
            return False
        y = 0.0
        for c in self.plan.policy.poly:  # Horner, highest degree first
            y = y * change + c
        self.accumulated += y
        if self.accumulated < self.plan.policy.threshold:
            return True
        self.accumulated = 0.0
        return False

    # -- attention and MLP: compute, reuse, forecast -------------------------
    def _module_forward(self, b, mod):
        def wrap(original):
            def forward(*args, **kwargs):
                k = self.current
                act = self.plan.acts[k][b][mod]
                if self.observer and b == 0 and mod == 0 and self.probe_step != k:
                    self._observe_probe(k, args[0] if args else next(iter(kwargs.values())))
                cap = self.plan.cap.get((b, mod), 0)
                if act == "C":
                    out = original(*args, **kwargs)
                    if cap:
                        self._taylor_update((b, mod), out, cap, k)
                elif act == "R":
                    out = self.factors[(b, mod)][0]
                else:
                    out = self._forecast((b, mod), int(act[1:]), k)
                if self.observer:
                    self.observer.feature(k, b, mod, out)
                return out
            return forward
        return wrap

    def _taylor_update(self, slot, feature, cap, k):
        """f_0 = feature, f_{j+1} = (f_j − f_j^old) / d, d = steps since the last compute (runtime/cpu/cache_kernels.c)."""
        old = self.factors[slot]
        dist = float(k - self.last.get(slot, k))
        valid = min(len(old) + 1, cap)
        new, nxt = [], feature
        for j in range(valid):
            new.append(nxt)
            if j + 1 < valid:
                nxt = (nxt - old[j]) / dist
        self.factors[slot], self.last[slot] = new, k

    def _forecast(self, slot, order, k):
        """Σ_{j ≤ min(order, available)} f_j · x^j / j!, x = k − step of the last compute, coefficients
        rounded to float32 as the engine's kernel does."""
        f = self.factors[slot]
        x = float(k - self.last[slot])
        out = None
        for j in range(min(order + 1, len(f))):
            coef = float(np.float32(1.0 / math.factorial(j)))
            power = float(np.float32(x ** j))
            term = coef * f[j] * power
            out = term if out is None else out + term
        return out


def _rel_l1(a, b):
    """Σ|a − b| / Σ|b|: the differences in float32, the sums in float64 (rel_l1 of the CPU backend)."""
    return ((a - b).abs().double().sum() / b.abs().double().sum()).item()


def _sample(out):
    """The output tensor of an official forward (a tensor) or a diffusers one (an output object or a tuple)."""
    if torch.is_tensor(out):
        return out
    if isinstance(out, tuple):
        return out[0]
    return out.sample


def _with_sample(out, fn):
    if torch.is_tensor(out):
        return fn(out)
    if isinstance(out, tuple):
        return (fn(out[0]),) + tuple(out[1:])
    out.sample = fn(out.sample)
    return out


def apply_schedule(model, schedule, check_timesteps=True):
    """A context manager: inside it the k-th call of `model`'s forward is step k of `schedule` (a Schedule,
    a table path or its text); with classifier-free guidance both halves go through one call, as the
    official `forward_with_cfg` does. ε is divided by the step's scale after guidance when the guidance is
    `forward_with_cfg`, else on the forward's output (the same, guidance being linear). With
    check_timesteps the model's timestep must be the row's t. Dynamic policies (TeaCache, first-block
    cache) decide per step as the engine does; the returned object's `skipped` lists the decisions.
    Raises ScheduleError when the table does not fit the model."""
    return ScheduleHooks(model, schedule, check_timesteps=check_timesteps)
