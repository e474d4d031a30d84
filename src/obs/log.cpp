// Boost.Log wiring: an asynchronous text sink per logger instance, filtered by an instance tag.
#include "offerd/obs/log.hpp"

#include <atomic>
#include <boost/core/null_deleter.hpp>
#include <boost/log/attributes/constant.hpp>
#include <boost/log/core.hpp>
#include <boost/log/expressions.hpp>
#include <boost/log/sinks/async_frontend.hpp>
#include <boost/log/sinks/bounded_fifo_queue.hpp>
#include <boost/log/sinks/drop_on_overflow.hpp>
#include <boost/log/sinks/text_ostream_backend.hpp>
#include <boost/log/sources/record_ostream.hpp>
#include <boost/make_shared.hpp>
#include <chrono>
#include <cstdio>
#include <unistd.h>
#include <fstream>
#include <iostream>
#include <stdexcept>

#include "offerd/domain/timestamp.hpp"
#include "offerd/obs/trace.hpp"

namespace offerd {

namespace logging = boost::log;
namespace sinks = boost::log::sinks;

const char* to_string(log_level l) noexcept {
    switch (l) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warn: return "warn";
    case log_level::error: return "error";
    case log_level::off: return "off";
    }
    return "info";
}

result<log_level> parse_log_level(std::string_view s) {
    for (log_level l : {log_level::debug, log_level::info, log_level::warn, log_level::error, log_level::off})
        if (s == to_string(l)) return l;
    if (s == "warning") return log_level::warn;
    return fail(errc::invalid_field, "log level must be debug, info, warn, error or off, got '" + std::string(s) + "'");
}

namespace {
using sink_t = sinks::asynchronous_sink<sinks::text_ostream_backend,
                                        sinks::bounded_fifo_queue<256, sinks::drop_on_overflow>>;
std::atomic<int> next_instance{1};

std::string host_and_pid() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "localhost");
    return std::string(host) + ":" + std::to_string(::getpid());
}
}  // namespace

struct logger::sink_holder {
    boost::shared_ptr<sink_t> sink;
    std::string path;                     // empty: stderr
    boost::shared_ptr<std::ostream> file; // the stream the backend writes to, when path is set
};

logger::logger(const log_config& cfg) : level_(cfg.level), instance_(cfg.instance.empty() ? host_and_pid() : cfg.instance), sink_(std::make_unique<sink_holder>()) {
    const int instance = next_instance.fetch_add(1);
    auto backend = boost::make_shared<sinks::text_ostream_backend>();
    if (cfg.file.empty()) {
        backend->add_stream(boost::shared_ptr<std::ostream>(&std::clog, boost::null_deleter()));
    } else {
        auto file = boost::make_shared<std::ofstream>(cfg.file, std::ios::app);
        if (!*file) throw std::runtime_error("cannot open log file '" + cfg.file + "'");
        backend->add_stream(file);
        sink_->path = cfg.file;
        sink_->file = file;
    }
    backend->auto_flush(true);
    sink_->sink = boost::make_shared<sink_t>(backend);
    sink_->sink->set_filter(logging::expressions::attr<int>("offerd_instance") == instance);
    sink_->sink->set_formatter(logging::expressions::stream << logging::expressions::smessage);
    logging::core::get()->add_sink(sink_->sink);
    source_.add_attribute("offerd_instance", logging::attributes::constant<int>(instance));
    batcher_ = std::thread([this] { batcher(); });
}

logger::~logger() {
    {
        std::lock_guard lock(batch_mutex_);
        stopping_ = true;
    }
    batch_cv_.notify_one();
    batcher_.join();
    {
        std::unique_lock lock(batch_mutex_);
        push_batch(lock);
    }
    logging::core::get()->remove_sink(sink_->sink);
    sink_->sink->stop();
    sink_->sink->flush();
}

result<bool> logger::reopen() {
    if (sink_->path.empty()) return true;
    auto file = boost::make_shared<std::ofstream>(sink_->path, std::ios::app);
    if (!*file) return fail(errc::internal, "cannot open log file '" + sink_->path + "'");
    flush();  // what was written before the signal goes to the old file
    // locked_backend: exclusive access, the sink thread does not write meanwhile.
    auto backend = sink_->sink->locked_backend();
    backend->remove_stream(sink_->file);
    backend->add_stream(file);
    sink_->file = file;
    return true;
}

namespace {
constexpr std::size_t batch_push_bytes = 64 * 1024;
constexpr std::size_t batch_max_bytes = 16 * 1024 * 1024;
constexpr auto batch_period = std::chrono::milliseconds(20);
}  // namespace

void logger::push_batch(std::unique_lock<std::mutex>& batch_lock) {
    if (dropped_ > 0) {
        if (!batch_.empty()) batch_ += '\n';
        const auto now = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch());
        batch_ += R"({"ts":")" + format_rfc3339(now.count(), true) + R"(","level":"warn","event":"log_dropped","lines":)" +
                  std::to_string(dropped_) + "}";
        dropped_ = 0;
    }
    if (batch_.empty()) return;
    std::string out = std::move(batch_);
    batch_ = std::move(spare_);
    batch_.clear();
    std::unique_lock push_lock(push_mutex_);
    batch_lock.unlock();
    logging::record rec = source_.open_record();
    if (rec) {
        logging::record_ostream strm(rec);
        strm << out;
        strm.flush();
        source_.push_record(std::move(rec));
    }
    push_lock.unlock();
    out.clear();
    batch_lock.lock();
    if (out.capacity() > spare_.capacity()) spare_ = std::move(out);
}

void logger::batcher() {
    std::unique_lock lock(batch_mutex_);
    while (!stopping_) {
        batch_cv_.wait_for(lock, batch_period);
        push_batch(lock);
    }
}

void logger::write(std::string line) {
    std::unique_lock lock(batch_mutex_);
    if (batch_.size() + line.size() > batch_max_bytes) {
        ++dropped_;
        dropped_total_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    if (!batch_.empty()) batch_ += '\n';
    batch_ += line;
    if (batch_.size() >= batch_push_bytes) push_batch(lock);
}

void logger::flush() {
    {
        std::unique_lock lock(batch_mutex_);
        push_batch(lock);
    }
    { std::lock_guard wait_for_pushes(push_mutex_); }  // a batch another thread took before ours is in the sink
    sink_->sink->flush();
}

log_event::log_event(logger& log, log_level level, std::string_view event, std::string_view request_id)
    : log_(log.enabled(level) ? &log : nullptr), w_(line_) {
    if (!log_) return;
    line_.reserve(256);
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    std::string ts = format_rfc3339(now.count(), /*always_fraction=*/true);
    w_.begin_object().member("ts", std::string_view(ts)).member("level", to_string(level)).member("event", event);
    if (!request_id.empty()) w_.member("request_id", request_id);
}

log_event::log_event(logger& log, log_level level, std::string_view event, std::string_view request_id, const trace_context* trace)
    : log_event(log, level, event, request_id) {
    if (!log_) return;
    if (trace) {
        if (!trace->trace_id.empty()) w_.member("trace_id", std::string_view(trace->trace_id));
        if (!trace->span_id.empty()) w_.member("span_id", std::string_view(trace->span_id));
        if (!trace->parent_span_id.empty()) w_.member("parent_span_id", std::string_view(trace->parent_span_id));
        if (!trace->service.empty()) w_.member("service", trace->service);
    }
    w_.member("instance", std::string_view(log.instance()));  // never empty: HOSTNAME:PID by default
}

log_event::~log_event() {
    if (!log_) return;
    w_.end_object();
    log_->write(std::move(line_));
}

}  // namespace offerd
