"""ctypes bindings to libebcache.so: numpy arrays in and out, C failures raised with the C message.

    m = ebcache.lib.Model("data/dit_fmnist.safetensors")
    out = m.forward(x, t, y)                                   # (N, C_out, H, W) float32
    x0, stats = m.sample(m.initial_noise(8), y, respacing="50", schedule="fora2.schedule")
    ebcache.lib.record(output="rec.h5", model=..., n=16)       # pipeline/recording.h
    ebcache.lib.fit("rec.h5", "fit.h5"); ebcache.lib.search("rec.h5", "t.schedule", method="fora", target_speedup=2)
    ebcache.lib.evaluate("samples.h5", "data/classifier.safetensors")   # pipeline/evaluation.h

The library is $EBCACHE_LIB, else build/libebcache.so of the source tree this package sits in, else the
system's libebcache.so. The runtime calls (runtime/ebcache.h) are bound when the library loads; the
experiment layer's (pipeline/*.h: run_sample, record, fit, search, evaluate) when first called, so a
library built without them still serves the rest. An eb_status other than EB_OK raises InputError
(EB_EINPUT: bad input; also a ValueError) or EbcacheError (EB_ERUNTIME) carrying eb_last_error().
"""
import ctypes
import ctypes.util
import os

import numpy as np

EB_OK, EB_ERUNTIME, EB_EINPUT = 0, 1, 2
SAMPLERS = {"ddpm": 0, "ddim": 1}
VAR_TYPES = {"learned_range": 0, "fixed_small": 1, "fixed_large": 2}
GUIDANCE = ("official", "eps", "all")


class EbcacheError(RuntimeError):
    """A failure the C library reported: `code` (eb_status) and the library's message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class InputError(EbcacheError, ValueError):
    """EB_EINPUT: the input (a file, an argument) is wrong; the message names it."""


# -- structures of runtime/ebcache.h and pipeline/*.h ----------------------
class Config(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in ("input_size", "patch_size", "in_channels", "hidden_size", "depth",
                                            "num_heads", "num_classes", "learn_sigma")]

    def as_dict(self):
        return {n: getattr(self, n) for n, _ in self._fields_}


class Device(ctypes.Structure):
    _fields_ = [("device", ctypes.c_char_p), ("precision", ctypes.c_int)]


class DiffusionSchedule(ctypes.Structure):  # eb_schedule
    _fields_ = [("S", ctypes.c_int), ("timestep", ctypes.POINTER(ctypes.c_int))] + \
               [(n, ctypes.POINTER(ctypes.c_double)) for n in (
                   "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_recip_ac", "sqrt_recipm1_ac",
                   "posterior_variance", "posterior_log_var_clipped", "posterior_mean_coef1", "posterior_mean_coef2")]


class SamplerOpts(ctypes.Structure):  # eb_sampler_opts
    _fields_ = [("kind", ctypes.c_int), ("var_type", ctypes.c_int), ("eta", ctypes.c_float),
                ("cfg_scale", ctypes.c_float), ("guide_channels", ctypes.c_int), ("seed", ctypes.c_uint64),
                ("progress", ctypes.c_int)]


class CacheStats(ctypes.Structure):  # eb_cache_stats
    _fields_ = [("macs", ctypes.c_double), ("macs_uncached", ctypes.c_double), ("cache_bytes", ctypes.c_size_t),
                ("steps", ctypes.c_int), ("steps_skipped", ctypes.c_int)]

    def as_dict(self):
        d = {n: getattr(self, n) for n, _ in self._fields_}
        d["flop_fraction"] = self.macs / self.macs_uncached if self.macs_uncached else 1.0
        return d


class RunParams(ctypes.Structure):  # eb_run_params (pipeline/run.h)
    _fields_ = [("model", ctypes.c_char_p), ("heads", ctypes.c_int), ("sampler", ctypes.c_int),
                ("respacing", ctypes.c_char_p), ("eta", ctypes.c_double), ("variance", ctypes.c_int),
                ("cfg_scale", ctypes.c_double), ("cfg_channels", ctypes.c_char_p), ("seed", ctypes.c_uint64),
                ("noise", ctypes.c_char_p), ("labels", ctypes.POINTER(ctypes.c_int32)), ("n_labels", ctypes.c_int),
                ("n", ctypes.c_int), ("batch", ctypes.c_int), ("schedule", ctypes.c_char_p),
                ("threads", ctypes.c_int), ("device", Device), ("progress", ctypes.c_int)]


class SampleParams(ctypes.Structure):  # eb_sample_params
    _fields_ = [("run", RunParams), ("output", ctypes.c_char_p), ("baseline", ctypes.c_int),
                ("comm", ctypes.c_void_p)]  # NULL: one process


class SampleResult(ctypes.Structure):  # eb_sample_result
    _fields_ = [("N", ctypes.c_int), ("steps", ctypes.c_int), ("wall", ctypes.c_double),
                ("baseline_wall", ctypes.c_double), ("flop_fraction", ctypes.c_double),
                ("cache_bytes", ctypes.c_size_t), ("steps_run", ctypes.c_int), ("steps_skipped", ctypes.c_int),
                ("policy", ctypes.c_int),
                ("warning", ctypes.c_char * 1024), ("merge_seconds", ctypes.c_double)]


class RecordParams(ctypes.Structure):  # eb_record_params (pipeline/recording.h)
    _fields_ = [("run", RunParams), ("data", ctypes.c_char_p), ("fmnist_dir", ctypes.c_char_p),
                ("start_step", ctypes.c_int), ("eps_q", ctypes.c_int), ("dump_features", ctypes.c_char_p),
                ("output", ctypes.c_char_p), ("comm", ctypes.c_void_p)]  # NULL: one process


class RecordResult(ctypes.Structure):  # eb_record_result
    _fields_ = [("N", ctypes.c_int), ("S", ctypes.c_int), ("start_step", ctypes.c_int), ("wall", ctypes.c_double),
                ("macs", ctypes.c_double), ("macs_uncached", ctypes.c_double), ("warning", ctypes.c_char * 1024)]


class SearchOpts(ctypes.Structure):  # struct eb_search_opts (search/search.h)
    _fields_ = [("method", ctypes.c_void_p), ("target", ctypes.c_double), ("scaling", ctypes.c_int),
                ("delta_a", ctypes.c_double), ("delta_c", ctypes.c_double), ("t_thre", ctypes.c_double),
                ("threshold", ctypes.c_double), ("interval", ctypes.c_int), ("blocks", ctypes.c_int),
                ("boundary", ctypes.c_int), ("order", ctypes.c_int), ("warmup", ctypes.c_int),
                ("lookahead", ctypes.c_int), ("max_skips", ctypes.c_int), ("retention", ctypes.c_double),
                ("router", ctypes.c_char_p)]


class SearchParams(ctypes.Structure):  # eb_search_params (pipeline/searching.h)
    _fields_ = [("record", ctypes.c_char_p), ("fit", ctypes.c_char_p), ("config", ctypes.c_char_p),
                ("model", ctypes.c_char_p), ("opts", SearchOpts), ("threads", ctypes.c_int),
                ("progress", ctypes.c_int), ("output", ctypes.c_char_p)]


class SearchOutcome(ctypes.Structure):  # eb_search_outcome
    _fields_ = [("met", ctypes.c_int), ("note", ctypes.c_char * 512), ("flops", ctypes.c_double),
                ("deviation", ctypes.c_double), ("param", ctypes.c_double), ("runs", ctypes.c_int),
                ("method", ctypes.c_char * 64), ("params", ctypes.c_char * 256), ("warning", ctypes.c_char * 1024)]


class EvalParams(ctypes.Structure):  # eb_eval_params (pipeline/evaluation.h)
    _fields_ = [("samples", ctypes.c_char_p), ("dataset", ctypes.c_char_p), ("labels_dataset", ctypes.c_char_p),
                ("reference", ctypes.c_char_p), ("classifier", ctypes.c_char_p), ("features", ctypes.c_void_p),
                ("real_split", ctypes.c_char_p),
                ("n_real", ctypes.c_int), ("real_cache", ctypes.c_char_p), ("fmnist_dir", ctypes.c_char_p),
                ("floor", ctypes.c_int), ("output", ctypes.c_char_p),
                ("inception", ctypes.c_char_p), ("reference_batch", ctypes.c_char_p), ("batch", ctypes.c_int),
                ("device", ctypes.c_void_p), ("comm", ctypes.c_void_p), ("progress", ctypes.c_int)]


class EvalResult(ctypes.Structure):  # eb_eval_result
    _fields_ = [("n_samples", ctypes.c_int), ("n_real", ctypes.c_int), ("D", ctypes.c_int), ("k", ctypes.c_int),
                ("fd", ctypes.c_double), ("fd_mean", ctypes.c_double), ("fd_cov", ctypes.c_double),
                ("sfid", ctypes.c_double), ("inception_score", ctypes.c_double),
                ("pixel_k", ctypes.c_int), ("pixel_fd", ctypes.c_double), ("pixel_fd_mean", ctypes.c_double),
                ("pixel_fd_cov", ctypes.c_double), ("precision", ctypes.c_double), ("recall", ctypes.c_double),
                ("accuracy", ctypes.c_double), ("real_accuracy", ctypes.c_double), ("psnr", ctypes.c_double),
                ("ssim", ctypes.c_double), ("samples", ctypes.c_char_p), ("labels", ctypes.c_char_p),
                ("extractor", ctypes.c_char * 64)]


# -- the library -------------------------------------------------------------
_lib = None
_pipeline_bound = {}
P = ctypes.POINTER
_F32, _I32 = P(ctypes.c_float), P(ctypes.c_int32)
_CORE = {  # name: (argtypes); every one returns eb_status unless listed in _RESTYPES
    "eb_last_error": [],
    "eb_model_load": [P(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_int],
    "eb_model_free": [ctypes.c_void_p],
    "eb_model_config": [ctypes.c_void_p],
    "eb_model_warning": [ctypes.c_void_p],
    "eb_model_device": [ctypes.c_void_p],
    "eb_forward": [ctypes.c_void_p, _F32, _F32, _I32, _I32, ctypes.c_int],
    "eb_forward_cfg": [ctypes.c_void_p, _F32, _F32, _I32, _I32, ctypes.c_int, ctypes.c_float, ctypes.c_int],
    "eb_guidance_parse": [P(ctypes.c_int), ctypes.c_char_p],
    "eb_guide_channels": [P(Config), ctypes.c_int],
    "eb_schedule_create": [P(DiffusionSchedule), ctypes.c_char_p],
    "eb_schedule_free": [P(DiffusionSchedule)],
    "eb_cache_schedule_read": [P(ctypes.c_void_p), ctypes.c_char_p],
    "eb_cache_schedule_free": [ctypes.c_void_p],
    "eb_cache_schedule_check": [ctypes.c_void_p, P(Config), P(DiffusionSchedule)],
    "eb_cache_schedule_flops": [ctypes.c_void_p, P(Config)],
    "eb_sample_cached": [ctypes.c_void_p, P(DiffusionSchedule), P(SamplerOpts), ctypes.c_void_p, _F32, _I32,
                         ctypes.c_int, ctypes.c_int, P(CacheStats)],
    "eb_rng_key": [ctypes.c_uint64, ctypes.c_uint64],
    "eb_rng_fill_normal": [_F32, ctypes.c_size_t, ctypes.c_uint64],
    "eb_set_threads": [ctypes.c_int],
}
_RESTYPES = {"eb_last_error": ctypes.c_char_p, "eb_model_free": None, "eb_model_config": P(Config),
             "eb_model_warning": ctypes.c_char_p, "eb_model_device": ctypes.c_char_p, "eb_guide_channels": ctypes.c_int,
             "eb_schedule_free": None, "eb_cache_schedule_free": None, "eb_cache_schedule_flops": ctypes.c_double,
             "eb_rng_key": ctypes.c_uint64, "eb_rng_fill_normal": None, "eb_set_threads": None,
             "eb_run_params_defaults": None, "eb_sample_params_defaults": None, "eb_record_params_defaults": None,
             "eb_search_params_defaults": None, "eb_eval_params_defaults": None, "eb_method_find": ctypes.c_void_p, "eb_scaling_parse": ctypes.c_int}
_PIPELINE = {
    "eb_sample_params_defaults": [P(SampleParams)],
    "eb_sample_to_file": [P(SampleParams), P(SampleResult)],
    "eb_record_params_defaults": [P(RecordParams)],
    "eb_record_to_file": [P(RecordParams), P(RecordResult)],
    "eb_fit_to_file": [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p],
    "eb_search_params_defaults": [P(SearchParams)],
    "eb_search_to_file": [P(SearchParams), P(SearchOutcome)],
    "eb_method_find": [ctypes.c_char_p],
    "eb_eval_params_defaults": [P(EvalParams)],
    "eb_evaluate": [P(EvalParams), P(EvalResult)],
    "eb_scaling_parse": [P(ctypes.c_int), ctypes.c_char_p],
}


def library_path():
    """Where the library is looked for (see the module's doc)."""
    if os.environ.get("EBCACHE_LIB"):
        return os.environ["EBCACHE_LIB"]
    tree = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "libebcache.so")
    if os.path.exists(tree):
        return os.path.abspath(tree)
    return ctypes.util.find_library("ebcache")


def load(path=None):
    """The loaded library (loads it on the first call). OSError naming where it was looked for."""
    global _lib
    if _lib is not None and path is None:
        return _lib
    where = path or library_path()
    if not where:
        raise OSError("libebcache.so not found: set EBCACHE_LIB, or build build/libebcache.so in the source tree")
    lib = ctypes.CDLL(where)
    _pipeline_bound.clear()
    for name, args in _CORE.items():
        _bind(lib, name, args)
    _lib = lib
    return lib


def _bind(lib, name, args):
    try:
        f = getattr(lib, name)
    except AttributeError:
        raise EbcacheError(EB_ERUNTIME, f"{lib._name} has no {name}: it was built without that part of ebcache")
    f.argtypes = args
    f.restype = _RESTYPES.get(name, ctypes.c_int)
    return f


def _fn(name):
    """A pipeline function, bound on first use (EbcacheError when the library lacks it)."""
    lib = load()
    if name not in _pipeline_bound:
        _pipeline_bound[name] = _bind(lib, name, _PIPELINE[name])
    return _pipeline_bound[name]


def check(status):
    """Raises the C library's last error for a failed eb_status."""
    if status == EB_OK:
        return
    message = (load().eb_last_error() or b"").decode("utf-8", "replace")
    raise (InputError if status == EB_EINPUT else EbcacheError)(status, message)


def _b(s):
    return None if s is None else os.fsencode(s) if isinstance(s, os.PathLike) else str(s).encode()


def _f32(a, shape=None, name="x"):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if shape is not None and a.shape != shape:
        raise InputError(EB_EINPUT, f"{name} has shape {a.shape}, expected {shape}")
    return a


def _i32(a, n):
    """(n) int32 from a sequence of n values or one value."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(a), (n,)), dtype=np.int32)


def set_threads(n):
    """Threads the library's kernels use (0: all cores)."""
    load().eb_set_threads(int(n))


def normals(seed, stream, n):
    """(n) float32: the generator's stream `stream` of `seed` (docs/rng.md), computed by the library."""
    lib = load()
    out = np.empty(n, dtype=np.float32)
    lib.eb_rng_fill_normal(out.ctypes.data_as(_F32), n, lib.eb_rng_key(seed, stream))
    return out


class Model:
    """A model the C engine loaded (a .safetensors file or a diffusers folder)."""

    def __init__(self, path, heads=0):
        lib = load()
        self._ptr = ctypes.c_void_p()
        check(lib.eb_model_load(ctypes.byref(self._ptr), _b(path), int(heads)))
        self.path = str(path)
        c = lib.eb_model_config(self._ptr).contents
        self.config = c.as_dict()
        self._config = Config(**self.config)
        self.warning = (lib.eb_model_warning(self._ptr) or b"").decode()
        self.device = lib.eb_model_device(self._ptr).decode()

    def close(self):
        if getattr(self, "_ptr", None):
            load().eb_model_free(self._ptr)
            self._ptr = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def image_shape(self):
        c = self.config
        return (c["in_channels"], c["input_size"], c["input_size"])

    @property
    def out_channels(self):
        return self.config["in_channels"] * (2 if self.config["learn_sigma"] else 1)

    def guide_channels(self, rule="official"):
        """Output channels guidance combines under `rule` ('official', 'eps', 'all') or a count."""
        if isinstance(rule, int):
            return rule
        g = ctypes.c_int()
        check(load().eb_guidance_parse(ctypes.byref(g), _b(rule)))
        return load().eb_guide_channels(ctypes.byref(self._config), g.value)

    def forward(self, x, t, y, cfg_scale=1.0, guidance="official"):
        """x (N, C, H, W), t and y (N) or scalars -> (N, C_out, H, W); with cfg_scale ≠ 1 guided as
        eb_forward_cfg (both passes in one batch)."""
        x = _f32(x)
        N = x.shape[0]
        if x.shape[1:] != self.image_shape:
            raise InputError(EB_EINPUT, f"x has shape {x.shape}, expected (N, {', '.join(map(str, self.image_shape))})")
        t, y = _i32(t, N), _i32(y, N)
        out = np.empty((N, self.out_channels) + self.image_shape[1:], dtype=np.float32)
        args = (self._ptr, out.ctypes.data_as(_F32), x.ctypes.data_as(_F32), t.ctypes.data_as(_I32),
                y.ctypes.data_as(_I32), N)
        if cfg_scale == 1:
            check(load().eb_forward(*args))
        else:
            check(load().eb_forward_cfg(*args, float(cfg_scale), self.guide_channels(guidance)))
        return out

    def initial_noise(self, n, seed=0, first_index=0):
        """(n, C, H, W) x_T of samples first_index.. as `ebcache sample --seed` draws it."""
        per = int(np.prod(self.image_shape))
        return np.stack([normals(seed, (first_index + i) << 20, per).reshape(self.image_shape) for i in range(n)])

    def sample(self, x_T, y, respacing="50", sampler="ddpm", eta=0.0, cfg_scale=1.5, guidance="official",
               variance=None, seed=0, schedule=None, first_index=0):
        """Runs the reverse process from x_T (N, C, H, W) with labels y (N), optionally under a cache
        schedule table file; returns (samples (N, C, H, W), cache statistics dict)."""
        lib = load()
        x = _f32(x_T).copy()
        N = x.shape[0]
        y = _i32(y, N)
        s = DiffusionSchedule()
        check(lib.eb_schedule_create(ctypes.byref(s), _b(respacing)))
        table = ctypes.c_void_p()
        try:
            if sampler not in SAMPLERS:
                raise InputError(EB_EINPUT, f"sampler '{sampler}' is not ddpm or ddim")
            vt = variance or ("learned_range" if self.config["learn_sigma"] else "fixed_large")
            o = SamplerOpts(SAMPLERS[sampler], VAR_TYPES[vt], eta, cfg_scale, self.guide_channels(guidance), seed, 0)
            if schedule is not None:
                check(lib.eb_cache_schedule_read(ctypes.byref(table), _b(schedule)))
            stats = CacheStats()
            check(lib.eb_sample_cached(self._ptr, ctypes.byref(s), ctypes.byref(o), table, x.ctypes.data_as(_F32),
                                       y.ctypes.data_as(_I32), N, first_index, ctypes.byref(stats)))
            return x, stats.as_dict()
        finally:
            if table:
                lib.eb_cache_schedule_free(table)
            lib.eb_schedule_free(ctypes.byref(s))

    def schedule_flops(self, schedule, respacing=None):
        """The predicted fraction of the uncached MACs of a table file on this model, after checking it
        against the model (and the sampler of `respacing` when given)."""
        lib = load()
        table = ctypes.c_void_p()
        check(lib.eb_cache_schedule_read(ctypes.byref(table), _b(schedule)))
        s = DiffusionSchedule()
        try:
            if respacing is not None:
                check(lib.eb_schedule_create(ctypes.byref(s), _b(respacing)))
            check(lib.eb_cache_schedule_check(table, ctypes.byref(self._config), ctypes.byref(s) if respacing else None))
            return lib.eb_cache_schedule_flops(table, ctypes.byref(self._config))
        finally:
            lib.eb_cache_schedule_free(table)
            if respacing is not None:
                lib.eb_schedule_free(ctypes.byref(s))


# -- the experiment layer (pipeline/*.h) -------------------------------------
def _struct_dict(r):
    """A result structure as a dict, char arrays decoded."""
    out = {n: getattr(r, n) for n, _ in r._fields_}
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in out.items()}


def _run_params(p, model, *, respacing="50", sampler="ddpm", eta=None, variance="large", cfg_scale=1.5,
                guidance="official", seed=0, noise=None, labels=None, n=0, batch=32, schedule=None, threads=0,
                device=None, heads=0, keep=None):
    """Fills an eb_run_params (after its defaults); `keep` holds what the pointers point into."""
    keep = keep if keep is not None else []
    p.model, p.heads, p.respacing = _b(model), heads, _b(respacing)
    if eta is not None:  # the default (NaN) means none given: DDIM's 0, and DDPM takes none
        p.eta = eta
    p.sampler = SAMPLERS[sampler]
    p.variance = {"large": 0, "small": 1}[variance]
    p.cfg_scale, p.cfg_channels, p.seed = cfg_scale, _b(str(guidance)), seed
    p.noise, p.schedule, p.n, p.batch, p.threads = _b(noise), _b(schedule), n, batch, threads
    if labels is not None:
        arr = (ctypes.c_int32 * len(labels))(*labels)
        keep.append(arr)
        p.labels, p.n_labels = ctypes.cast(arr, _I32), len(labels)
    if device is not None:
        p.device = Device(_b(device), 0)
    return keep


def run_sample(output, model, baseline=False, **run):
    """`ebcache sample` as a call (eb_sample_to_file): samples into `output`; returns the result dict
    (N, steps, wall, baseline_wall, flop_fraction, cache_bytes, steps_skipped, warning)."""
    p = SampleParams()
    _fn("eb_sample_params_defaults")(ctypes.byref(p))
    keep = _run_params(p.run, model, **run)
    p.output, p.baseline = _b(output), int(baseline)
    r = SampleResult()
    check(_fn("eb_sample_to_file")(ctypes.byref(p), ctypes.byref(r)))
    del keep
    return _struct_dict(r)


def record(output, model, data=None, start_step=0, eps_q=True, dump_features=None, **run):
    """`ebcache record` as a call (eb_record_to_file); returns the result dict."""
    p = RecordParams()
    _fn("eb_record_params_defaults")(ctypes.byref(p))
    keep = _run_params(p.run, model, **run)
    p.data, p.start_step, p.eps_q = _b(data), start_step, int(eps_q)
    p.dump_features, p.output = _b(dump_features), _b(output)
    r = RecordResult()
    check(_fn("eb_record_to_file")(ctypes.byref(p), ctypes.byref(r)))
    del keep
    return _struct_dict(r)


def fit(recording, output=None):
    """`ebcache fit` as a call (eb_fit_to_file): the fits of a recording, written to `output` when given."""
    buf = ctypes.create_string_buffer(1 << 16)  # the eb_fit the call fills (read back from the file)
    check(_fn("eb_fit_to_file")(_b(recording), _b(output), buf, None))


def search(recording, output, method="eb-cache", target_speedup=None, fit=None, config=None, model=None,
           threads=0, scaling=None, **opts):
    """`ebcache search` as a call (eb_search_to_file): writes the table `output`; returns the outcome dict
    (met, note, flops, deviation, param, runs, method, params, warning). opts: threshold, interval,
    blocks, boundary, order, warmup, t_thre, delta_a, delta_c (search/search.h)."""
    p = SearchParams()
    _fn("eb_search_params_defaults")(ctypes.byref(p))
    m = _fn("eb_method_find")(_b(method))
    if not m:
        raise InputError(EB_EINPUT, f"unknown method '{method}'")
    p.opts.method = m
    if target_speedup is not None:
        p.opts.target = 1.0 / target_speedup
    if scaling is not None:
        sc = ctypes.c_int()
        check(_fn("eb_scaling_parse")(ctypes.byref(sc), _b(scaling)))
        p.opts.scaling = sc.value
    for k, v in opts.items():
        if k not in dict(SearchOpts._fields_) or k in ("method", "target", "scaling"):
            raise TypeError(f"search() got an unknown option '{k}'")
        setattr(p.opts, k, v)
    p.record, p.fit, p.config, p.model = _b(recording), _b(fit), _b(config), _b(model)
    p.threads, p.output = threads, _b(output)
    o = SearchOutcome()
    check(_fn("eb_search_to_file")(ctypes.byref(p), ctypes.byref(o)))
    return _struct_dict(o)


def evaluate(samples, classifier, output=None, reference=None, **opts):
    """`ebcache eval` as a call (eb_evaluate): FD, precision/recall, pixel FD, accuracy, PSNR/SSIM of a
    samples file against the Fashion-MNIST split; returns the result dict. opts: dataset,
    labels_dataset, real_split, n_real, real_cache, fmnist_dir, floor (pipeline/evaluation.h)."""
    p = EvalParams()
    _fn("eb_eval_params_defaults")(ctypes.byref(p))
    p.samples, p.classifier, p.output, p.reference = _b(samples), _b(classifier), _b(output), _b(reference)
    for k, v in opts.items():
        if k not in dict(EvalParams._fields_) or k == "features":
            raise TypeError(f"evaluate() got an unknown option '{k}'")
        setattr(p, k, _b(v) if isinstance(v, (str, os.PathLike)) else v)
    r = EvalResult()
    check(_fn("eb_evaluate")(ctypes.byref(p), ctypes.byref(r)))
    return _struct_dict(r)

