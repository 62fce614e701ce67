"""Cache schedule tables (docs/schedule.md): read, build, expand per step and block, write.

A table written by `ebcache schedule …` or `ebcache search` reads back and writes out byte for byte:
`Schedule.write` prints the C writer's layout (runtime/schedule.c), numbers in the shortest `%g` form
that reads back to the same double.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ebcache.files import atomic_path

VERSION_LINE = "# ebcache schedule v1"
MAX_TIMESTEPS = 1000
# Directive keys holding free text, in the order the writer prints them.
TEXT_KEYS = ("method", "params", "model", "sampler")
ACTIONS = ("C", "R", "S", "T1", "T2", "T3", "T4")


class ScheduleError(ValueError):
    """A table that does not parse or does not fit a model: the message names the file and line."""


def format_number(v):
    """The shortest '%.{p}g' that reads back to the same double (the C writer's fmt_double)."""
    for p in range(1, 18):
        s = "%.*g" % (p, v)
        if float(s) == v:
            return s
    return repr(v)


@dataclass
class Policy:
    """A dynamic policy (`## policy:`): kind 'teacache' or 'fbcache', its threshold, TeaCache's
    rescale polynomial (highest degree first) and first-block cache's block count."""
    kind: str
    threshold: float
    poly: List[float] = field(default_factory=lambda: [1.0, 0.0])
    blocks: int = 0

    def text(self):
        s = f"{self.kind} threshold={format_number(self.threshold)}"
        if self.kind == "fbcache":
            s += f" blocks={self.blocks}"
        else:
            s += " poly=" + ",".join(format_number(c) for c in self.poly)
        return s


@dataclass
class Row:
    """One table row: blocks None means '*' (every block), else the inclusive range (lo, hi)."""
    step: int
    t: int
    blocks: Optional[Tuple[int, int]]
    attn: str
    mlp: str
    scale: float

    def blocks_text(self):
        if self.blocks is None:
            return "*"
        lo, hi = self.blocks
        return str(lo) if lo == hi else f"{lo}-{hi}"


@dataclass
class Schedule:
    """A cache schedule: `steps` sampling steps, rows in step order (each step's first row covers
    every block, the rows after it override blocks), provenance directives and an optional policy."""
    steps: int
    rows: List[Row]
    method: str = ""
    params: str = ""
    model: str = ""
    sampler: str = ""
    flops: Optional[float] = None
    policy: Optional[Policy] = None
    trailer: List[str] = field(default_factory=list)  # comment lines after the last row, verbatim (search's provenance)

    @property
    def provenance(self):
        """{key: value} of the trailer's '# key: value' lines (what `ebcache search` recorded)."""
        pairs = (line[1:].partition(":") for line in self.trailer if line.startswith("#"))
        return {k.strip(): v.strip() for k, colon, v in pairs if colon}

    # -- per step and block ------------------------------------------------
    def actions(self, depth):
        """acts[step][block] = (attn, mlp) action strings ('C', 'R', 'T1'…'T4', 'S') for a model of `depth` blocks."""
        acts = [[None] * depth for _ in range(self.steps)]
        for r in self.rows:
            lo, hi = (0, depth - 1) if r.blocks is None else r.blocks
            if hi >= depth:
                raise ScheduleError(f"step {r.step}: blocks {r.blocks_text()} exceed the model's {depth} blocks")
            for b in range(lo, hi + 1):
                acts[r.step][b] = (r.attn, r.mlp)
        return acts

    def step_scale(self):
        """(steps) ε divisor of each step."""
        return [r.scale for r in self.rows if r.blocks is None]

    def step_t(self):
        """(steps) model timestep of each step (the table's t column)."""
        return [r.t for r in self.rows if r.blocks is None]

    # -- text --------------------------------------------------------------
    def text(self):
        """The table as `ebcache` writes it."""
        out = [VERSION_LINE]
        out += [f"## {k}: {getattr(self, k)}" for k in TEXT_KEYS if getattr(self, k)]
        out.append(f"## steps: {self.steps}")
        if self.flops is not None:
            out.append(f"## flops: {self.flops:.4f}")
        if self.policy is not None:
            out.append(f"## policy: {self.policy.text()}")
        out.append("# step    t  blocks  attn  mlp  scale")
        out += ["%6d %4d %7s %5s %4s  %s" % (r.step, r.t, r.blocks_text(), r.attn, r.mlp, format_number(r.scale))
                for r in self.rows]
        return "\n".join(out + self.trailer) + "\n"

    def write(self, path):
        """Writes the table to `path` through a temporary file in the same folder and a rename."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(self.text().encode())

    @staticmethod
    def parse(text, name="(table)"):
        return _Parser(name).parse(text)


def read_schedule(path):
    """The table at `path` (docs/schedule.md), checked as the C reader checks it; ScheduleError names FILE:LINE."""
    with open(path, "rb") as f:
        data = f.read()
    if b"\0" in data:
        raise ScheduleError(f"{path}: holds a NUL byte, not a text table")
    return Schedule.parse(data.decode("utf-8"), str(path))


class _Parser:
    def __init__(self, name):
        self.name = name
        self.line = 0

    def fail(self, msg):
        raise ScheduleError(f"{self.name}:{self.line}: {msg}")

    def integer(self, s, lo, hi, what):
        try:
            v = int(s, 10)
        except ValueError:
            v = None
        if v is None or not lo <= v <= hi or s.strip() != s:
            self.fail(f"{what} '{s}' is not an integer in [{lo}, {hi}]")
        return v

    def number(self, s, what):
        try:
            v = float(s)
        except ValueError:
            v = float("nan")
        if v != v or v in (float("inf"), float("-inf")):
            self.fail(f"{what} '{s}' is not a finite number")
        return v

    def parse(self, text):
        meta, rows, steps, steps_line = {}, [], None, 0
        policy, trailer = None, []
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not lines:
            self.line = 1
            self.fail("empty file")
        for self.line, raw in enumerate(lines, start=1):
            s = raw.strip(" \t\r")
            if self.line == 1:
                if s != VERSION_LINE:
                    if s.startswith("# ebcache schedule "):
                        self.fail(f"unsupported version '{s[19:]}' (this ebcache reads v1)")
                    self.fail(f"not an ebcache schedule: line 1 must be '{VERSION_LINE}'")
                continue
            if not s or (s[0] == "#" and s[1:2] != "#"):
                if rows:
                    trailer.append(raw)
                continue
            if s[0] == "#":
                if rows:
                    self.fail("directives belong in the header, before the first row")
                key, colon, value = s[2:].partition(":")
                key, value = key.strip(" \t"), value.strip(" \t")
                if not colon:
                    self.fail(f"directive '{s[2:]}' is not '## key: value'")
                if key in meta or (key == "steps" and steps is not None):
                    self.fail(f"directive '{key}' given twice")
                if key in TEXT_KEYS:
                    if not value:
                        self.fail(f"directive '{key}' is empty")
                    meta[key] = value
                elif key == "steps":
                    steps, steps_line = self.integer(value, 1, MAX_TIMESTEPS, "steps"), self.line
                elif key == "flops":
                    v = self.number(value, "flops")
                    if not 0 <= v <= 1:
                        self.fail(f"flops '{value}' is not a fraction in [0, 1]")
                    meta[key] = v
                elif key == "policy":
                    meta[key] = True
                    policy = self.policy(value)
                else:
                    self.fail(f"unknown directive '{key}' (method, params, model, sampler, steps, flops, policy)")
                continue
            trailer = []  # a comment between rows is not after the last one
            rows.append(self.row(s, steps, rows))
        if steps is None:
            self.fail("no '## steps: S' directive")
        last = rows[-1].step if rows else -1
        if last != steps - 1:
            self.fail(f"steps {last + 1}..{steps - 1} have no row (## steps: {steps} at line {steps_line})")
        meta.pop("policy", None)
        return Schedule(steps=steps, rows=rows, policy=policy, trailer=trailer, **meta)

    def policy(self, value):
        tok = value.split()
        if not tok:
            self.fail("policy: missing kind (teacache, fbcache or none)")
        kind = tok[0]
        if kind not in ("teacache", "fbcache", "none"):
            self.fail(f"policy: unknown kind '{kind}' (teacache, fbcache or none)")
        p = Policy(kind, 0.0)
        for kv in tok[1:]:
            key, eq, v = kv.partition("=")
            if not eq:
                self.fail(f"policy: '{kv}' is not key=value")
            if key == "threshold" and kind != "none":
                p.threshold = self.number(v, "policy: threshold")
                if p.threshold <= 0:
                    self.fail(f"policy: threshold '{v}' is not a positive number")
            elif key == "poly" and kind == "teacache":
                p.poly = [self.number(c, "policy: poly coefficient") for c in v.split(",") if c]
                if not p.poly:
                    self.fail("policy: poly is empty")
            elif key == "blocks" and kind == "fbcache":
                p.blocks = self.integer(v, 1, 1 << 20, "policy: blocks")
            else:
                self.fail(f"policy: unknown key '{key}' for {kind}")
        if kind == "none":
            return None
        if p.threshold == 0:
            self.fail("policy: threshold=X is required")
        if kind == "fbcache" and not p.blocks:
            self.fail("policy: fbcache needs blocks=F")
        return p

    def row(self, s, steps, rows):
        tok = s.split()
        if len(tok) != 6:
            found = "more than 6" if len(tok) > 6 else str(len(tok))
            self.fail(f"expected 6 columns (step t blocks attn mlp scale), found {found}")
        if steps is None:
            self.fail("rows must follow the '## steps: S' directive")
        step = self.integer(tok[0], 0, steps - 1, "step")
        t = self.integer(tok[1], 0, MAX_TIMESTEPS - 1, "t")
        blocks = None
        if tok[2] != "*":
            lo, dash, hi = tok[2].partition("-")
            try:
                a, b = int(lo), int(hi if dash else lo)
            except ValueError:
                a, b = -1, -1
            if a < 0 or b < a or not lo.isdigit() or (dash and not hi.isdigit()):
                self.fail(f"blocks '{tok[2]}' is not '*', an index or a range 'a-b'")
            blocks = (a, b)
        for name, a in (("attn", tok[3]), ("mlp", tok[4])):
            if a not in ACTIONS:
                self.fail(f"unknown {name} action '{a}' (C, R, T1..T4, S)")
        scale = self.number(tok[5], "scale")
        if scale <= 0:
            self.fail(f"scale '{tok[5]}' is not a positive finite number")
        prev = rows[-1].step if rows else -1
        if step < prev:
            self.fail(f"step {step} after step {prev}: rows must be in step order")
        if step > prev:
            if step != prev + 1:
                self.fail(f"step {prev + 1} has no row (rows jump from step {prev} to {step})")
            if blocks is not None:
                self.fail(f"the first row of step {step} must cover every block ('*')")
        else:
            base = next(r for r in reversed(rows) if r.blocks is None)
            if blocks is None:
                self.fail(f"step {step} has a second '*' row")
            if t != base.t:
                self.fail(f"t {t} differs from step {step}'s t {base.t}")
            if scale != base.scale:
                self.fail(f"scale {tok[5]} differs from step {step}'s scale {format_number(base.scale)}")
        return Row(step, t, blocks, tok[3], tok[4], scale)
