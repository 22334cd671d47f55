"""The names of every report field, in one place.

Reports are plain ``dict[str, object]`` so they serialise to JSON/CSV without
adapters; this module is the single owner of their keys and their order.
"""

from __future__ import annotations

from typing import Final

# The allowed change of every gated metric unless the user says otherwise. Chosen from
# benchmarks/gate_quality.py: at 5% a 10% slowdown (throughput -9%) is caught, at 10% it could not be.
DEFAULT_TOLERANCE: Final = 0.05

MAX: Final = "max"
"""In ``n_models``: as many copies as the device holds for the pipeline size (resolved by the matrix)."""

# What identifies a configuration: the matrix point and where it ran.
CONFIG_KEYS: Final[tuple[str, ...]] = (
    "model_filename",
    "model_name",
    "device_type",
    "instance_type",
    "batch_size",
    "n_models",
    "workers_per_model",
    "pipeline_size",
    "multiprocess",
    "multiinterpreter",
    "start_dts",
    "stop_dts",
    "duration",
)

PERCENTILES: Final[tuple[int, ...]] = (0, 50, 90, 95, 99, 100)
LATENCY_KEYS: Final[tuple[str, ...]] = tuple(f"latency_ms_p{p}" for p in PERCENTILES)
# Model-only latency (the forward call, plus a device sync where the backend needs one).
INFER_LATENCY_KEYS: Final[tuple[str, ...]] = ("infer_ms_p50", "infer_ms_p99")
# The model call's time on the device itself, where the backend can time it (CUDA events on each worker's
# stream); None elsewhere. Beside infer_ms_*, the gap is host time: launches, Python, waiting.
DEVICE_LATENCY_KEYS: Final[tuple[str, ...]] = ("device_ms_p50", "device_ms_p99")
# How the copy's host threads were laid out: torch intra-op threads per worker (None where the copy set none,
# as with multiprocess=False, whose copies share the calling process).
THREAD_KEYS: Final[tuple[str, ...]] = ("intra_op_threads",)

PHASE_KEYS: Final[tuple[str, ...]] = (
    "load_avg_ms",
    # With compile_mode: torch.compile and the calls until its graph was stable, in seconds; the
    # longest any copy of any round took (copies compile side by side, so that is what the
    # configuration waited). Never part of the timed window. None without compile_mode.
    "compile_s",
    "warmup_avg_ms",
    "preprocess_avg_ms",
    "infer_avg_ms",
    "postprocess_avg_ms",
    "e2e_avg_ms",
)

RESOURCE_KEYS: Final[tuple[str, ...]] = (
    "cpu_percent_avg",
    "cpu_percent_peak",
    "mem_percent_avg",
    "mem_percent_peak",
)

# Open-loop load (request_rate): what was offered and what came of it. Latency percentiles then count
# from each request's scheduled arrival; service_ms_* from the start of its processing, wait_ms_* before.
SERVING_KEYS: Final[tuple[str, ...]] = (
    "request_rate",
    "arrival",
    "offered_rps",
    "achieved_rps",
    "service_ms_p50",
    "service_ms_p99",
    "wait_ms_p50",
    "wait_ms_p99",
    "late_requests",
    "dropped_requests",
    "unfinished_requests",
    "overloaded",
)

# A latency objective (slo): whether this configuration's latency met it, and with no request_rate, the
# highest open-loop rate that meets it (requests/s), the latency there and the cost at that rate.
SLO_KEYS: Final[tuple[str, ...]] = (
    "slo",
    "slo_met",
    "slo_missed",
    "capacity_rps",
    "capacity_low_rps",
    "capacity_high_rps",
    "capacity_ms_p50",
    "capacity_ms_p99",
    "cost_per_1m_inf_at_capacity",
)

# A generative (streaming) model: per-request time to first token, time per output token after the first
# (TPOT), every inter-token gap (ITL) and end-to-end latency, all in ms; tokens per request (means) and per
# second (output tokens in the window / window, and per request: its tokens / its e2e); requests that yielded
# no token (failed) or fewer than output_tokens asked (short); with per-request objectives in the SLO, the
# rate (requests/s) and share of requests that met all of them (goodput). prefill/decode where the model
# reports its phases (pytest_neuronperf.phases.record_phase). ``generation`` names the request shape asked for
# (``input_tokens=16 output_tokens=32``, or ``streaming``), which a baseline must share to be compared.
GEN_PERCENTILES: Final[tuple[int, ...]] = (50, 90, 95, 99)
GENERATIVE_KEYS: Final[tuple[str, ...]] = (
    "generation",
    "input_tokens",
    "output_tokens",
    "output_tokens_per_s",
    "requests_per_s",
    *(f"{m}_ms_p{q}" for m in ("ttft", "tpot", "itl", "e2e") for q in GEN_PERCENTILES),
    "request_tokens_per_s_p50",
    "prefill_ms_p50",
    "prefill_ms_p99",
    "decode_ms_p50",
    "decode_ms_p99",
    "failed_requests",
    "short_requests",
    "goodput",
    "goodput_ratio",
)

# What the device reported while the windows were open (neuron-monitor on NeuronCores, NVML on GPUs): device
# and runtime latency (ms; the gap to latency_ms_* is host overhead), utilisation of the copies' cores or GPUs
# (percent), device memory (MB), error and execution counters summed over the windows, energy; a one-line
# diagnosis (host- or device-bound); None where no telemetry ran.
TELEMETRY_KEYS: Final[tuple[str, ...]] = (
    "device_latency_ms_p50",
    "device_latency_ms_p99",
    "runtime_latency_ms_p50",
    "runtime_latency_ms_p99",
    "device_util_avg",
    "device_util_peak",
    "device_mem_tensors_mb",
    "device_mem_model_code_mb",
    "device_mem_mb",
    "device_errors",
    "device_executions",
    "device_failed_executions",
    "gpu_util_avg",
    "gpu_util_peak",
    "gpu_mem_peak_mb",
    "torch_mem_peak_mb",
    "gpu_power_avg_w",
    "energy_j",
    "joules_per_inf",
    "joules_per_1m_inf",
    "telemetry_reports",
    "diagnosis",
)

# The load a configuration was measured under: figures are compared only with figures measured under the same.
LOAD_KEYS: Final[tuple[str, ...]] = ("request_rate", "arrival", "slo", "generation")

METRIC_KEYS: Final[tuple[str, ...]] = (
    "total_infs",
    "total_s",
    "throughput_avg",
    "throughput_peak",
    *LATENCY_KEYS,
    *INFER_LATENCY_KEYS,
    *DEVICE_LATENCY_KEYS,
    *PHASE_KEYS,
    "latency_samples",
    "latency_exact",
    "throughput_cv",
    "stable",
    *RESOURCE_KEYS,
    *THREAD_KEYS,
    "cost_per_1m_inf",
    *SERVING_KEYS,
    *SLO_KEYS,
    *GENERATIVE_KEYS,
    *TELEMETRY_KEYS,
)

STATUS_KEYS: Final[tuple[str, ...]] = ("status", "reason")

# Per-round run-level summaries (a list of dicts; JSON only, not a CSV column).
ROUNDS_KEY: Final = "rounds"
# A round summary's distributions on a log grid, pooled by paired comparisons (not kept in baselines).
SKETCHES_KEY: Final = "sketches"
# The end-to-end latency distribution: [[percentile, ms], ...] at CDF_PERCENTILES (JSON only).
CDF_KEY: Final = "latency_cdf_ms"
CDF_PERCENTILES: Final[tuple[float, ...]] = (
    *(float(p) for p in range(0, 100, 5)), 97.5, 99.0, 99.5, 99.9, 100.0,
)
# Throughput over time: [[seconds since the round's window opened, inferences/s], ...] per round (JSON only).
TIMELINE_KEY: Final = "throughput_timeline"
# A capacity search's steps, the first round's: [{rate, offered_rps, achieved_rps, p50_ms, p99_ms, ..., met}, ...]
# (JSON only): latency against offered load, the knee the HTML report plots.
CAPACITY_STEPS_KEY: Final = "capacity_steps"
# A generative model's TTFT and ITL distributions ([[percentile, ms], ...] at CDF_PERCENTILES) and its output
# tokens/s over time (per round, as TIMELINE_KEY) (JSON only).
TTFT_CDF_KEY: Final = "ttft_cdf_ms"
ITL_CDF_KEY: Final = "itl_cdf_ms"
TOKENS_TIMELINE_KEY: Final = "tokens_timeline"
LIST_KEYS: Final[tuple[str, ...]] = (ROUNDS_KEY, CDF_KEY, TIMELINE_KEY, CAPACITY_STEPS_KEY, TTFT_CDF_KEY, ITL_CDF_KEY,
                                     TOKENS_TIMELINE_KEY)

ALL_KEYS: Final[tuple[str, ...]] = CONFIG_KEYS + METRIC_KEYS + STATUS_KEYS + LIST_KEYS

# The columns of the guide's table, in its order.
PRINT_COLS: Final[tuple[str, ...]] = (
    "throughput_avg",
    "latency_ms_p50",
    "latency_ms_p99",
    "n_models",
    "pipeline_size",
    "workers_per_model",
    "batch_size",
    "model_filename",
)

CSV_COLS: Final[tuple[str, ...]] = CONFIG_KEYS + METRIC_KEYS + STATUS_KEYS

# What a configuration's identity is made of when results are compared over time.
MATRIX_KEYS: Final[tuple[str, ...]] = ("n_models", "workers_per_model", "pipeline_size", "batch_size")

STATUS_OK: Final = "finished"
STATUS_SKIPPED: Final = "skipped"
STATUS_ERROR: Final = "error"
# Open-loop load the copies could not keep up with: reported, never judged or saved as a baseline.
STATUS_OVERLOADED: Final = "overloaded"
# The device reported errors or failed executions during a window: no measurement, never judged or saved.
STATUS_INVALID: Final = "invalid"

# Added beside a report's fields when a whole pytest run is written out (CSV rows, summaries).
RUN_KEYS: Final[tuple[str, ...]] = (
    "test",
    "measurement",
    "verdict",
    "baseline_throughput",
    "throughput_change",
    "baseline_p99_ms",
    "p99_change",
)
CSV_RUN_COLS: Final[tuple[str, ...]] = RUN_KEYS + CSV_COLS

# The Neuron SDK where a baseline was measured: the compiler (package neuronx-cc), the runtime (libnrt) and the
# kernel driver. Recorded, and compared, for device_type="neuron" only.
NEURON_FINGERPRINT_FIELDS: Final[tuple[str, ...]] = ("neuronx_cc", "neuron_runtime", "neuron_driver")
# The GPU and its software: the GPU's name, the NVIDIA driver and the CUDA runtime torch was built with.
# Recorded, and compared, for device_type="cuda" only.
CUDA_FINGERPRINT_FIELDS: Final[tuple[str, ...]] = ("gpu_name", "cuda_driver", "cuda_runtime")
# The device type each device-specific field belongs to. A fingerprint of another device type holds "n/a"
# there, and a field is compared only where one side's device type uses it: a year of CPU baselines, saved
# before these fields existed, still applies after the upgrade. A Neuron or CUDA baseline saved before then
# records no versions, so nothing says it was measured under this SDK: it is not compared until saved anew
# (it stays in its file), and the mismatch says so ("neuronx_cc (not recorded) -> 2.16.372").
DEVICE_FINGERPRINT_FIELDS: Final[dict[str, str]] = {
    **{k: "neuron" for k in NEURON_FINGERPRINT_FIELDS},
    **{k: "cuda" for k in CUDA_FINGERPRINT_FIELDS},
}

# Everything recorded about where a baseline was measured, in display order.
FINGERPRINT_FIELDS: Final[tuple[str, ...]] = (
    "device_type",
    "instance_type",
    "cpu_model",
    "cpu_count",
    "torch",
    "torch_neuronx",
    *NEURON_FINGERPRINT_FIELDS,
    *CUDA_FINGERPRINT_FIELDS,
    "python",
)
# Python's patch version rarely moves inference speed, and requiring it to
# match would orphan every baseline on each interpreter update.
# The SDK and driver versions are compared: an SDK upgrade is the most common cause of a large
# change of Neuron performance (a compiler release can make a model several times slower or
# faster), and a baseline from another SDK compared silently would blame, or credit, the code under
# test for it. The mismatch names each version that changed ("neuronx_cc 2.15.128 -> 2.16.372").
DEFAULT_FINGERPRINT_KEYS: Final[tuple[str, ...]] = tuple(k for k in FINGERPRINT_FIELDS if k != "python")
