// Structured JSON-lines logging on a Boost.Log asynchronous sink (the hot path only enqueues).
#pragma once

#include <boost/log/sources/logger.hpp>
#include <atomic>
#include <boost/shared_ptr.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "offerd/codec/json_writer.hpp"
#include "offerd/domain/errors.hpp"

namespace offerd {

struct trace_context;

enum class log_level { debug = 0, info = 1, warn = 2, error = 3, off = 4 };
const char* to_string(log_level l) noexcept;
result<log_level> parse_log_level(std::string_view s);

struct log_config {
    std::string file;                   // empty: stderr
    log_level level = log_level::info;
    std::string instance{};  // this process's name in request events (`instance`); empty: HOSTNAME:PID
};

// One instance per application (tests run several): it adds its own asynchronous sink to the
// Boost.Log core, filtered to records from this instance. Lines are gathered into batches (one
// Boost.Log record per batch, pushed every 20 ms or at 64 KiB) so the sink thread wakes a few
// dozen times a second instead of once per request; the request path only appends under a
// short mutex. Beyond 16 MiB of unbatched lines, lines are dropped (and counted in a
// `log_dropped` event) rather than blocking requests; the sink's queue holds at most 256
// batches (16 MiB) and drops whole batches beyond that, so a stalled log destination costs
// bounded memory. Thread-safe. Throws std::runtime_error
// when the log file cannot be opened.
class logger {
public:
    explicit logger(const log_config& cfg);
    ~logger();
    logger(const logger&) = delete;
    logger& operator=(const logger&) = delete;

    bool enabled(log_level l) const noexcept { return l >= level_ && level_ != log_level::off; }
    // line: one complete JSON object without a trailing newline.
    void write(std::string line);
    // Blocks until every line written so far is in the file.
    void flush();
    // Opens the log file again by its name (after logrotate moved it: SIGHUP) and writes on to
    // the new one; lines written before go to the old one. False with the reason (the old file
    // stays in use) when it cannot be opened; true without doing anything when logging to stderr.
    result<bool> reopen();
    // Lines dropped since start (each also reported in a `log_dropped` event): a line that would
    // take the unbatched lines over 16 MiB. Batches the sink's full queue drops are not counted.
    std::uint64_t dropped_lines() const noexcept { return dropped_total_.load(std::memory_order_relaxed); }
    const std::string& instance() const noexcept { return instance_; }

private:
    struct sink_holder;
    // Takes the batch under `batch_lock` (held on entry and on return) and hands it to the sink
    // with that lock released: the batcher thread is ordinary-priority and the workers may be
    // real-time, so a worker must never wait for it to format a record (a priority inversion).
    // push_mutex_ keeps the batches in order.
    void push_batch(std::unique_lock<std::mutex>& batch_lock);
    void batcher();

    log_level level_;
    std::string instance_;
    std::unique_ptr<sink_holder> sink_;
    boost::log::sources::logger_mt source_;
    std::mutex batch_mutex_;
    std::condition_variable batch_cv_;
    std::string batch_;
    std::string spare_;  // the previous batch's buffer, kept for its capacity
    std::mutex push_mutex_;
    std::uint64_t dropped_ = 0;  // since the last log_dropped event; under batch_mutex_
    std::atomic<std::uint64_t> dropped_total_{0};
    bool stopping_ = false;
    std::thread batcher_;
};

// Builds one event: {"ts":…,"level":…,"event":…,"request_id":…, fields…}; written on destruction.
// Costs nothing beyond a branch when the level is disabled.
class log_event {
public:
    log_event(logger& log, log_level level, std::string_view event, std::string_view request_id = {});
    // A request event: request_id, then trace_id, span_id, parent_span_id (when the caller sent
    // one) and service from the request's trace context (when not null), then the logger's instance.
    log_event(logger& log, log_level level, std::string_view event, std::string_view request_id, const trace_context* trace);
    ~log_event();
    log_event(const log_event&) = delete;
    log_event& operator=(const log_event&) = delete;

    bool active() const noexcept { return log_ != nullptr; }

    template <class T>
    log_event& with(std::string_view key, const T& value) {
        if (log_) w_.member(key, value);
        return *this;
    }
    log_event& with(std::string_view key, const std::string& value) { return with(key, std::string_view(value)); }
    // For nested objects: only valid when active().
    json_writer& writer() noexcept { return w_; }

private:
    logger* log_;
    std::string line_;
    json_writer w_;
};

}  // namespace offerd
