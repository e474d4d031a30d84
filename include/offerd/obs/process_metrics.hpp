// The standard process_* metrics (CPU, memory, descriptors, start time), read from /proc at
// scrape time. Linux only; what cannot be read is left out of the exposition.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace offerd {

struct process_stats {
    std::optional<double> cpu_seconds;         // user + system
    std::optional<double> resident_bytes;
    std::optional<double> virtual_bytes;
    std::optional<double> open_fds;
    std::optional<double> max_fds;             // the soft RLIMIT_NOFILE; absent when unlimited
    std::optional<double> start_time_seconds;  // since the Unix epoch
};

// The system facts /proc/PID/stat is expressed in.
struct proc_units {
    double ticks_per_second = 100;  // sysconf(_SC_CLK_TCK)
    double page_bytes = 4096;       // sysconf(_SC_PAGESIZE)
    std::optional<double> boot_time_seconds;  // /proc/stat's btime; without it no start time
};

// Parses the text of /proc/PID/stat (the command name may hold spaces and parentheses) into
// cpu_seconds, resident_bytes, virtual_bytes and start_time_seconds. Malformed text: those stay empty.
void parse_proc_stat(std::string_view text, const proc_units& units, process_stats& into);
// The `btime` line of /proc/stat, in seconds since the epoch; empty when missing or malformed.
std::optional<double> parse_boot_time(std::string_view proc_stat);
// The soft limit of the "Max open files" line of /proc/PID/limits; empty when missing or "unlimited".
std::optional<double> parse_max_open_files(std::string_view limits);

// Reads PROC_ROOT/self/{stat,limits,fd} and PROC_ROOT/stat. Never throws: an unreadable file
// leaves its fields empty. Costs a few small reads and one directory listing.
process_stats read_process_stats(const std::string& proc_root = "/proc");

// Appends the process_* families that have a value, each with its header.
void write_process_metrics(std::string& out, const process_stats& s);

}  // namespace offerd
