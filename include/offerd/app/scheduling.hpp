// How the worker threads ask the kernel to schedule them.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace offerd {

// Real-time priority for a worker thread (SCHED_FIFO at `priority`, reset on fork).
//
// Why: a worker's latency is mostly the time it waits for a core. Under the fair scheduler a
// worker that wakes with a request waits behind whatever else shares the core (a sidecar, a batch
// job, on our bench the load generator) until that task's slice ends: the 8-connection p99 was
// 2.0-2.6 ms against a server-side p99 of 1.1 ms. A SCHED_FIFO worker preempts fair tasks as soon
// as it wakes: p99 1.05 ms, p50 halved, throughput +6 % in the same runs (README, Performance).
// Why it is safe enough to be the default: the workers block in epoll whenever they have no
// ready work; the kernel keeps 5 % of every period for fair tasks (sched_rt_runtime_us), and we
// refuse when that throttle is off (-1); without CAP_SYS_NICE or an RLIMIT_RTPRIO >= priority
// (containers, unprivileged users) the kernel refuses and the worker stays as it was.
//
// Applies to the calling thread. Not applied, with the reason, when priority is 0, when the
// thread already runs under a policy other than SCHED_OTHER (chrt chose for us), when the
// throttle is off, or when the kernel refuses.
struct realtime_outcome {
    bool applied = false;
    std::string reason;  // why not, when not applied
};
realtime_outcome request_realtime(int priority);

// CPUs this process may run on (its affinity mask); at least 1.
std::size_t allowed_cpus() noexcept;

// Linux 6.12+ (EEVDF) lets a SCHED_OTHER thread ask for its own time slice (sched_setattr's
// sched_runtime, 0.1-100 ms). With a short one, a worker that wakes with work gets a core sooner
// when the cores are contended, at the price of more context switches. Applies to the calling
// thread; 0 asks for the kernel's default. Threads running under another policy (real-time,
// chrt: batch, idle) are left alone, and nice is kept. Returns whether the kernel now reports
// that slice (for 0: whether it took the request); older kernels accept and ignore the field, so
// this is false there.
bool request_sched_slice(std::chrono::microseconds slice) noexcept;

// The calling thread's policy as a word: "fifo", "rr", "other", "batch", "idle", "deadline".
std::string current_sched_policy();

}  // namespace offerd
