// glibc 2.36 has no sched_setattr/sched_getattr wrappers and no library wraps the EEVDF custom
// slice, hence the raw system calls and the kernel's struct layout (include/uapi/linux/sched/types.h).
#include "offerd/app/sched_slice.hpp"

#include <cstdint>
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

}  // namespace offerd
