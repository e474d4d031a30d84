// glibc 2.36 has no sched_setattr/sched_getattr wrappers and no library wraps the EEVDF custom
// slice, hence the raw system calls and the kernel's struct layout (include/uapi/linux/sched/types.h).
#include "offerd/app/scheduling.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>
#include <sys/resource.h>
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

std::optional<std::string> cgroup_cpu_limit(std::string_view proc_self_cgroup, const std::filesystem::path& cgroup_root) {
    namespace fs = std::filesystem;
    const auto read_word = [](const fs::path& file) -> std::optional<std::string> {
        std::ifstream in(file);
        std::string first, second;
        if (!(in >> first)) return std::nullopt;
        in >> second;
        return second.empty() ? first : first + " " + second;
    };
    // Each level from the process's own cgroup up to the root: a quota anywhere above binds too.
    const auto check = [&](const fs::path& mount, std::string path, const char* file, bool v2) -> std::optional<std::string> {
        for (;;) {
            const fs::path dir = path == "/" ? mount : mount / fs::path(path).relative_path();
            if (const auto v = read_word(dir / file)) {
                const bool unlimited = v2 ? v->starts_with("max") : v->starts_with("-");
                if (!unlimited) return (dir / file).string() + " = " + *v;
            }
            if (path == "/" || path.empty()) return std::nullopt;
            path = fs::path(path).parent_path().string();
        }
    };
    std::size_t pos = 0;
    while (pos < proc_self_cgroup.size()) {
        std::size_t eol = proc_self_cgroup.find('\n', pos);
        if (eol == std::string_view::npos) eol = proc_self_cgroup.size();
        const std::string_view line = proc_self_cgroup.substr(pos, eol - pos);
        pos = eol + 1;
        const std::size_t a = line.find(':'), b = a == std::string_view::npos ? a : line.find(':', a + 1);
        if (b == std::string_view::npos) continue;
        const std::string controllers(line.substr(a + 1, b - a - 1));
        const std::string path(line.substr(b + 1));
        if (path.empty() || path.front() != '/') continue;
        if (controllers.empty()) {  // cgroup v2 (unified), mounted at the root or beside v1 controllers
            for (const char* mount : {"", "unified"})
                if (auto limit = check(cgroup_root / mount, path, "cpu.max", true)) return limit;
            continue;
        }
        std::string_view rest = controllers;
        bool has_cpu = false;
        while (!rest.empty()) {
            const std::size_t c = rest.find(',');
            has_cpu |= rest.substr(0, c) == "cpu";
            rest = c == std::string_view::npos ? std::string_view{} : rest.substr(c + 1);
        }
        if (!has_cpu) continue;
        for (const std::string& mount : {controllers, std::string("cpu")})
            if (auto limit = check(cgroup_root / mount, path, "cpu.cfs_quota_us", false)) return limit;
    }
    return std::nullopt;
}

namespace {
// Why real-time workers would be unsafe on this machine, if they would be.
std::optional<std::string> realtime_hazard() {
    // Before Linux 6.12 the kernel throttles real-time tasks after sched_rt_runtime_us of each
    // second; -1 turns that off, and then a worker that never blocks would own its core.
    if (std::ifstream in("/proc/sys/kernel/sched_rt_runtime_us"); in) {
        long long runtime_us = 0;
        if (in >> runtime_us && runtime_us < 0) return "the kernel's real-time throttle is off (kernel.sched_rt_runtime_us = -1)";
    }
    // From 6.12 a per-CPU fair server gives ordinary tasks their share instead; runtime 0 turns it
    // off. Only visible where debugfs is mounted and readable.
    std::error_code ec;
    for (const auto& cpu : std::filesystem::directory_iterator("/sys/kernel/debug/sched/fair_server", ec)) {
        std::ifstream in(cpu.path() / "runtime");
        long long ns = -1;
        if (in >> ns && ns == 0) return "the kernel's fair server is off (" + (cpu.path() / "runtime").string() + " = 0)";
    }
    // CPU quotas (cpu.max, cpu.cfs_quota_us) bind only ordinary tasks: real-time workers would
    // run past a container's CPU limit, at the expense of everything else on the node.
    std::ostringstream text;
    if (std::ifstream in("/proc/self/cgroup"); in) text << in.rdbuf();
    if (auto limit = cgroup_cpu_limit(text.str(), "/sys/fs/cgroup"))
        return "the process's cgroup has a CPU limit (" + *limit + "), which does not bind real-time threads";
    // A finite RLIMIT_RTTIME kills a real-time thread that runs that long without blocking.
    if (rlimit rl{}; getrlimit(RLIMIT_RTTIME, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        return "RLIMIT_RTTIME is set (ulimit -R " + std::to_string(rl.rlim_cur) + "): a busy worker would be killed";
    return std::nullopt;
}
}  // namespace

realtime_outcome request_realtime(int priority) {
    if (priority <= 0) return {false, "off (--realtime-priority 0)"};
    const int policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
    if (policy == SCHED_FIFO || policy == SCHED_RR) return {true, {}};  // real-time already (chrt): left as it is
    if (policy != SCHED_OTHER)
        return {false, "the thread was started under policy '" + current_sched_policy() + "' (e.g. chrt); left as it is"};
    if (auto hazard = realtime_hazard()) return {false, *hazard};
    const int max = sched_get_priority_max(SCHED_FIFO);
    if (max > 0 && priority > max) return {false, "priority above the kernel's maximum " + std::to_string(max)};
    sched_param param{};
    param.sched_priority = priority;
    if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &param) != 0) {
        const int err = errno;
        if (err == EPERM)
            return {false, "not permitted: needs CAP_SYS_NICE or an RLIMIT_RTPRIO (ulimit -r) of at least " + std::to_string(priority) +
                               ", and on kernels with real-time group scheduling a cgroup granted real-time runtime (cpu.rt_runtime_us)"};
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
