// How the worker threads ask the kernel to schedule them.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace offerd {

// Real-time priority for a worker thread (SCHED_FIFO at `priority`, reset on fork).
//
// Why: a worker's latency is mostly the time it waits for a core. Under the fair scheduler a
// worker that wakes with a request waits behind whatever else shares the core (a sidecar, a batch
// job, on our bench the load generator) until that task's slice ends: the 8-connection p99 was
// ~2.0 ms against a server-side p99 of ~1.1 ms. A SCHED_FIFO worker preempts fair tasks as soon
// as it wakes (README, Performance, for the figures; part of that gain is taken from the
// co-located load generator).
// Why it can be the default: the workers block in epoll whenever they have no ready work, and the
// kernel stops ordinary tasks starving for good (before 6.12 by throttling real-time tasks after
// 950 ms of each second, from 6.12 with a per-CPU fair server: 50 ms per second), though ordinary
// work on a CPU the workers saturate can wait up to ~0.95 s. We refuse when that protection is
// off, when a cgroup CPU limit would be escaped (quotas bind only fair tasks), and when
// RLIMIT_RTTIME would kill a busy worker; without CAP_SYS_NICE or an RLIMIT_RTPRIO >= priority
// (containers, unprivileged users) the kernel refuses and the worker stays as it was.
//
// Applies to the calling thread. A thread already real-time (chrt -f/-r) counts as applied and is
// left as it is; one started under batch or idle is left alone and reported.
struct realtime_outcome {
    bool applied = false;
    std::string reason;  // why not, when not applied
};
realtime_outcome request_realtime(int priority);

// The CPU quota that binds a process in these cgroups, as "file = value", if any: cgroup v2
// cpu.max other than "max", or v1 cpu.cfs_quota_us other than -1, at the process's own cgroup or
// any ancestor. `proc_self_cgroup` is the text of /proc/self/cgroup; `cgroup_root` is where the
// hierarchies are mounted (/sys/fs/cgroup). Missing files count as no limit.
std::optional<std::string> cgroup_cpu_limit(std::string_view proc_self_cgroup, const std::filesystem::path& cgroup_root);

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
