// glibc 2.36 has no sched_setattr/sched_getattr wrappers and no library wraps the EEVDF custom
// slice, hence the raw system calls and the kernel's struct layout (include/uapi/linux/sched/types.h).
#include "offerd/app/scheduling.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace offerd {

#if defined(SYS_sched_setattr) && defined(SYS_sched_getattr)
namespace {
struct kernel_sched_attr {
    std::uint32_t size;
    std::uint32_t sched_policy;
    std::uint64_t sched_flags;
    std::int32_t sched_nice;
    std::uint32_t sched_priority;
    std::uint64_t sched_runtime;  // for SCHED_OTHER on 6.12+: the requested slice in ns (0: default)
    std::uint64_t sched_deadline;
    std::uint64_t sched_period;
    std::uint32_t sched_util_min;
    std::uint32_t sched_util_max;
};

bool read_attr(kernel_sched_attr& a) noexcept {
    a = {};
    return syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) == 0;
}
}  // namespace

bool request_sched_slice(std::chrono::microseconds slice) noexcept {
    kernel_sched_attr a;
    if (!read_attr(a) || a.sched_policy != SCHED_OTHER) return false;
    const auto ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(slice).count());
    a.size = sizeof a;
    a.sched_flags &= 0x01;  // SCHED_FLAG_RESET_ON_FORK as it was; no clamp flags: clamps stay as they are
    a.sched_runtime = ns;
    if (syscall(SYS_sched_setattr, 0, &a, 0) != 0) return false;
    if (ns == 0) return true;
    return read_attr(a) && a.sched_runtime == ns;
}
#else
bool request_sched_slice(std::chrono::microseconds) noexcept { return false; }
#endif

realtime_outcome request_realtime(int priority) {
    if (priority <= 0) return {false, "off (--realtime-priority 0)"};
    const int policy = sched_getscheduler(0);
    if (policy != SCHED_OTHER)
        return {false, "the thread already runs under policy '" + current_sched_policy() + "' (e.g. chrt); left as it is"};
    // With the throttle off, a worker that never blocks would own its core outright.
    if (std::ifstream in("/proc/sys/kernel/sched_rt_runtime_us"); in) {
        long long runtime_us = 0;
        if (in >> runtime_us && runtime_us < 0)
            return {false, "the kernel's real-time throttle is off (kernel.sched_rt_runtime_us = -1)"};
    }
    const int max = sched_get_priority_max(SCHED_FIFO);
    if (max > 0 && priority > max) return {false, "priority above the kernel's maximum " + std::to_string(max)};
    sched_param param{};
    param.sched_priority = priority;
    if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &param) != 0) {
        const int err = errno;
        if (err == EPERM)
            return {false, "not permitted: needs CAP_SYS_NICE or an RLIMIT_RTPRIO (ulimit -r) of at least " + std::to_string(priority)};
        return {false, std::string("sched_setscheduler: ") + std::strerror(err)};
    }
    return {true, {}};
}

std::size_t allowed_cpus() noexcept {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    const int n = CPU_COUNT(&set);
    return n > 0 ? static_cast<std::size_t>(n) : 1u;
}

std::string current_sched_policy() {
    switch (sched_getscheduler(0) & ~SCHED_RESET_ON_FORK) {
        case SCHED_OTHER: return "other";
        case SCHED_FIFO: return "fifo";
        case SCHED_RR: return "rr";
        case SCHED_BATCH: return "batch";
        case SCHED_IDLE: return "idle";
#ifdef SCHED_DEADLINE
        case SCHED_DEADLINE: return "deadline";
#endif
        default: return "unknown";
    }
}

}  // namespace offerd
