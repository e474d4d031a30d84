// process_* metrics from /proc.
#include "offerd/obs/process_metrics.hpp"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <unistd.h>
#include <vector>

#include "offerd/obs/prometheus.hpp"

namespace offerd {

namespace {
std::optional<double> to_number(std::string_view s) {
    double v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return v;
}

std::vector<std::string_view> fields(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
        const std::size_t start = i;
        while (i < s.size() && s[i] != ' ' && s[i] != '\t' && s[i] != '\n') ++i;
        if (i > start) out.push_back(s.substr(start, i - start));
    }
    return out;
}

std::optional<std::string> slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) return std::nullopt;
    return text;
}
}  // namespace

void parse_proc_stat(std::string_view text, const proc_units& units, process_stats& into) {
    // "pid (comm) state ppid ...": comm may contain ") ", so the fields start after the last ')'.
    const std::size_t close = text.rfind(')');
    if (close == std::string_view::npos) return;
    const auto f = fields(text.substr(close + 1));
    // f[0] is field 3 (state): field N is f[N - 3].
    if (f.size() < 22) return;
    const auto utime = to_number(f[11]), stime = to_number(f[12]), start = to_number(f[19]);
    const auto vsize = to_number(f[20]), rss = to_number(f[21]);
    if (utime && stime && units.ticks_per_second > 0) into.cpu_seconds = (*utime + *stime) / units.ticks_per_second;
    if (vsize) into.virtual_bytes = *vsize;
    if (rss) into.resident_bytes = *rss * units.page_bytes;
    if (start && units.boot_time_seconds && units.ticks_per_second > 0)
        into.start_time_seconds = *units.boot_time_seconds + *start / units.ticks_per_second;
}

std::optional<double> parse_boot_time(std::string_view proc_stat) {
    std::size_t at = 0;
    while (at < proc_stat.size()) {
        const std::size_t eol = std::min(proc_stat.find('\n', at), proc_stat.size());
        const auto f = fields(proc_stat.substr(at, eol - at));
        if (f.size() == 2 && f[0] == "btime") return to_number(f[1]);
        at = eol + 1;
    }
    return std::nullopt;
}

std::optional<double> parse_max_open_files(std::string_view limits) {
    constexpr std::string_view name = "Max open files";
    std::size_t at = 0;
    while (at < limits.size()) {
        const std::size_t eol = std::min(limits.find('\n', at), limits.size());
        const std::string_view line = limits.substr(at, eol - at);
        if (line.starts_with(name)) {
            const auto f = fields(line.substr(name.size()));
            if (f.empty()) return std::nullopt;
            return to_number(f[0]);  // "unlimited" is not a number
        }
        at = eol + 1;
    }
    return std::nullopt;
}

process_stats read_process_stats(const std::string& proc_root) {
    process_stats s;
    proc_units units;
    if (const long t = ::sysconf(_SC_CLK_TCK); t > 0) units.ticks_per_second = static_cast<double>(t);
    if (const long p = ::sysconf(_SC_PAGESIZE); p > 0) units.page_bytes = static_cast<double>(p);
    if (const auto stat = slurp(proc_root + "/stat")) units.boot_time_seconds = parse_boot_time(*stat);
    if (const auto self = slurp(proc_root + "/self/stat")) parse_proc_stat(*self, units, s);
    if (const auto limits = slurp(proc_root + "/self/limits")) s.max_fds = parse_max_open_files(*limits);
    std::error_code ec;
    std::filesystem::directory_iterator it(proc_root + "/self/fd", ec);
    if (!ec) {
        double n = 0;
        for (const std::filesystem::directory_iterator end; it != end; it.increment(ec)) {
            if (ec) break;
            ++n;
        }
        if (!ec) s.open_fds = n;
    }
    return s;
}

void write_process_metrics(std::string& out, const process_stats& s) {
    const auto one = [&](std::string_view name, std::string_view type, std::string_view help, const std::optional<double>& v) {
        if (!v) return;
        write_metric_header(out, name, type, help);
        write_sample(out, name, {}, *v);
    };
    one("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", s.cpu_seconds);
    one("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", s.resident_bytes);
    one("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", s.virtual_bytes);
    one("process_open_fds", "gauge", "Number of open file descriptors.", s.open_fds);
    one("process_max_fds", "gauge", "Maximum number of open file descriptors.", s.max_fds);
    one("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", s.start_time_seconds);
}

}  // namespace offerd
