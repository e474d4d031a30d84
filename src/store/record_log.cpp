// Verified record file: scan and repair on open, group commit on a sync thread.
#include "offerd/store/record_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/crc.hpp>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>

#include "offerd/obs/log.hpp"

namespace offerd {

namespace {
using seq_completion = void(result<std::uint64_t>);

std::uint32_t crc32(std::string_view a, std::string_view b = {}) {
    boost::crc_32_type crc;
    crc.process_bytes(a.data(), a.size());
    crc.process_bytes(b.data(), b.size());
    return crc.checksum();
}

std::string encode_line(std::uint64_t seq, std::string_view payload) {
    const std::string seq_text = std::to_string(seq);
    std::string line = "C " + seq_text + ' ' + std::to_string(crc32(seq_text + ' ', payload)) + ' ';
    line.append(payload);
    line += '\n';
    return line;
}

// Reads the number before the next ' ' and the ' ' itself; the digits go to *text.
template <class T>
bool read_field(std::string_view& s, T& out, std::string_view* text = nullptr) {
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc{} || ptr == s.data() || ptr == s.data() + s.size() || *ptr != ' ') return false;
    const auto n = static_cast<std::size_t>(ptr - s.data());
    if (text) *text = s.substr(0, n);
    s.remove_prefix(n + 1);
    return true;
}

// A line without its newline; nullopt unless it is a whole, checksum-valid record.
std::optional<log_record> decode_line(std::string_view line) {
    if (line.size() < 2 || line[1] != ' ' || (line[0] != 'C' && line[0] != 'P')) return std::nullopt;
    const bool legacy = line[0] == 'P';
    std::string_view rest = line.substr(2), seq_text;
    log_record r;
    std::uint32_t crc = 0;
    if (!read_field(rest, r.seq, &seq_text) || !read_field(rest, crc)) return std::nullopt;
    // seq_text is followed by its ' ' in the line, so the C form's checksummed bytes are contiguous.
    const std::string_view covered = legacy ? rest : std::string_view(seq_text.data(), seq_text.size() + 1);
    if ((legacy ? crc32(rest) : crc32(covered, rest)) != crc) return std::nullopt;
    r.payload = std::string(rest);
    return r;
}

failure io_failure(const std::string& what, const std::string& path) {
    return fail(errc::internal, what + " '" + path + "': " + std::strerror(errno));
}

result<std::monostate> sync_directory_of(const std::string& path) {
    std::string dir = std::filesystem::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return io_failure("cannot open directory", dir);
    const int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) return io_failure("cannot fsync directory", dir);
    return std::monostate{};
}

struct span {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
};

// Appends the given byte ranges of `in` to out.
result<std::monostate> copy_spans(std::ifstream& in, const std::string& in_path, const std::vector<span>& spans, append_file& out) {
    std::string buf;
    for (const span& s : spans) {
        in.clear();
        in.seekg(static_cast<std::streamoff>(s.offset));
        for (std::uint64_t left = s.length; left > 0;) {
            buf.resize(static_cast<std::size_t>(std::min<std::uint64_t>(left, 1 << 16)));
            if (!in.read(buf.data(), static_cast<std::streamsize>(buf.size())))
                return fail(errc::internal, "cannot read '" + in_path + "' while repairing it");
            if (auto w = out.append(buf); !w) return w;
            left -= buf.size();
        }
    }
    return out.sync();
}

// Writes the lines to a fresh `<path><suffix>` and renames it over path.
template <class Fill>
result<std::monostate> replace_file(const std::string& path, const char* suffix, Fill fill) {
    const std::string tmp = path + suffix;
    std::filesystem::remove(tmp);
    auto out = append_file::open(tmp);
    if (!out) return std::move(out).error();
    if (auto r = fill(*out); !r) return r;
    if (auto r = out->sync(); !r) return r;
    if (::rename(tmp.c_str(), path.c_str()) != 0) return io_failure("cannot rename '" + tmp + "' over", path);
    return sync_directory_of(path);
}
}  // namespace

const char* to_string(fsync_policy p) noexcept { return p == fsync_policy::always ? "always" : "never"; }

result<fsync_policy> parse_fsync_policy(std::string_view s) {
    if (s == "always" || s == "true" || s == "on" || s == "yes" || s == "1") return fsync_policy::always;
    if (s == "never" || s == "false" || s == "off" || s == "no" || s == "0") return fsync_policy::never;
    return fail(errc::invalid_field, "fsync policy must be always or never, not '" + std::string(s) + "'");
}

std::string describe(const open_report& r) {
    return "offerd: " + r.path + ": dropped " + std::to_string(r.dropped) + " damaged record(s) at offset " +
           std::to_string(r.first_bad_offset) + " (kept " + std::to_string(r.kept) + ")";
}

void report_damage(const open_report& r, logger& log) {
    if (!r.damaged()) return;
    log_event(log, log_level::warn, "record_file_damaged")
        .with("path", r.path)
        .with("kept", static_cast<std::uint64_t>(r.kept))
        .with("dropped", static_cast<std::uint64_t>(r.dropped))
        .with("offset", r.first_bad_offset)
        .with("bytes_set_aside", r.bytes_set_aside)
        .with("set_aside_path", r.set_aside_path);
    const std::string line = describe(r) + '\n';
    std::fputs(line.c_str(), stderr);
}

namespace {
// How an append is completed: a coroutine resumed on its executor, or a blocked thread woken.
// (Not asio::any_completion_handler: Boost 1.81's wraps itself on move assignment.)
struct completion {
    virtual ~completion() = default;
    virtual void complete(result<std::uint64_t> r) = 0;
};

template <class Handler>
struct handler_completion final : completion {
    handler_completion(Handler h, const asio::any_io_executor& ex) : handler(std::move(h)), work(ex) {}
    void complete(result<std::uint64_t> r) override {
        const auto ex = work.get_executor();
        // Held by this (the sync) thread until post() has returned: otherwise the resumed caller
        // may finish and destroy its io_context while post() is still signalling it.
        auto keep = asio::make_work_guard(ex);
        asio::post(ex, [h = std::move(handler), r = std::move(r), w = std::move(work)]() mutable { std::move(h)(std::move(r)); });
        keep.reset();
    }
    Handler handler;
    asio::executor_work_guard<asio::any_io_executor> work;  // the caller's io_context runs until it is resumed
};

struct promise_completion final : completion {
    void complete(result<std::uint64_t> r) override { done.set_value(std::move(r)); }
    std::promise<result<std::uint64_t>> done;
};
}  // namespace

struct record_log::waiter {
    std::uint64_t seq = 0;
    commit_hook on_commit;
    std::unique_ptr<completion> done;
    void complete(result<std::uint64_t> r) { done->complete(std::move(r)); }
};

result<std::unique_ptr<record_log>> record_log::open(std::string path, fsync_policy policy, const visitor& each) {
    open_report report;
    report.path = path;
    std::uint64_t last_seq = 0, good_end = 0;
    std::vector<span> good, bad;
    std::ifstream in(path, std::ios::binary);
    if (!in && std::filesystem::exists(path)) return io_failure("cannot read", path);
    std::uint64_t offset = 0;
    for (std::string line; in && std::getline(in, line);) {
        const bool whole = !in.eof();  // getline stopped at a '\n', not at the end of the file
        const std::uint64_t length = line.size() + (whole ? 1 : 0);
        auto r = whole ? decode_line(line) : std::nullopt;
        auto& spans = r ? good : bad;
        if (!spans.empty() && spans.back().offset + spans.back().length == offset) spans.back().length += length;
        else spans.push_back({offset, length});
        if (r) {
            each(*r);
            ++report.kept;
            last_seq = std::max(last_seq, r->seq);
            good_end = offset + length;
        } else {
            if (report.dropped++ == 0) report.first_bad_offset = offset;
            report.bytes_set_aside += length;
        }
        offset += length;
    }
    if (in.bad()) return io_failure("cannot read", path);

    if (!bad.empty()) {
        for (int n = 1;; ++n) {
            report.set_aside_path = path + ".corrupt-" + std::to_string(n);
            if (!std::filesystem::exists(report.set_aside_path)) break;
        }
        auto aside = append_file::open(report.set_aside_path);
        if (!aside) return std::move(aside).error();
        if (auto r = copy_spans(in, path, bad, *aside); !r) return std::move(r).error();
        if (auto r = sync_directory_of(report.set_aside_path); !r) return std::move(r).error();
    }
    if (!bad.empty() && bad.front().offset < good_end) {
        // Whole records follow the damage: keep them, in a rewritten file.
        auto r = replace_file(path, ".repair", [&](append_file& out) { return copy_spans(in, path, good, out); });
        if (!r) return std::move(r).error();
    }
    auto file = append_file::open(path);
    if (!file) return std::move(file).error();
    std::uint64_t kept_bytes = 0;
    for (const span& s : good) kept_bytes += s.length;
    if (file->size() != kept_bytes) {
        // Only a damaged tail: cut it off.
        if (auto r = file->truncate(kept_bytes); !r) return std::move(r).error();
        if (auto r = file->sync(); !r) return std::move(r).error();
    }
    return std::unique_ptr<record_log>(new record_log(std::move(file).value(), policy, std::move(report), last_seq));
}

record_log::record_log(append_file file, fsync_policy policy, open_report report, std::uint64_t last_seq)
    : policy_(policy), report_(std::move(report)), file_(std::move(file)), last_seq_(last_seq) {
    if (policy_ == fsync_policy::always) syncer_ = std::thread([this] { run_syncer(); });
}

record_log::~record_log() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    if (syncer_.joinable()) syncer_.join();
}

result<std::uint64_t> record_log::write_now(std::string_view payload, const commit_hook& on_commit) {
    if (payload.find('\n') != std::string_view::npos) return fail(errc::internal, "a record payload cannot contain a newline");
    std::lock_guard lock(mutex_);
    if (broken_) return *broken_;
    const std::uint64_t seq = last_seq_ + 1;
    if (auto r = file_.append(encode_line(seq, payload)); !r) {
        if (file_.torn()) broken_ = r.error();
        return std::move(r).error();
    }
    last_seq_ = seq;
    appended_.fetch_add(1, std::memory_order_relaxed);
    if (on_commit) on_commit();
    return seq;
}

void record_log::enqueue(std::string_view payload, waiter w) {
    std::optional<failure> refused;
    {
        std::lock_guard lock(mutex_);
        if (payload.find('\n') != std::string_view::npos) refused = fail(errc::internal, "a record payload cannot contain a newline");
        else if (broken_) refused = broken_;
        else if (stopping_) refused = fail(errc::internal, "'" + report_.path + "' is closing");
        if (!refused) {
            w.seq = ++last_seq_;
            pending_ += encode_line(w.seq, payload);
            queue_.push_back(std::move(w));
        }
    }
    if (refused) w.complete(std::move(*refused));
    else wake_.notify_one();
}

asio::awaitable<result<std::uint64_t>> record_log::append(std::string payload, commit_hook on_commit) {
    if (policy_ == fsync_policy::never) co_return write_now(payload, on_commit);
    const asio::any_io_executor ex = co_await asio::this_coro::executor;
    co_return co_await asio::async_initiate<decltype(asio::use_awaitable), seq_completion>(
        [this, &payload, &on_commit, ex](auto handler) {
            waiter w;
            w.on_commit = std::move(on_commit);
            w.done = std::make_unique<handler_completion<decltype(handler)>>(std::move(handler), ex);
            enqueue(payload, std::move(w));
        },
        asio::use_awaitable);
}

result<std::uint64_t> record_log::append_sync(std::string payload, commit_hook on_commit) {
    if (policy_ == fsync_policy::never) return write_now(payload, on_commit);
    auto done = std::make_unique<promise_completion>();
    auto answer = done->done.get_future();
    waiter w;
    w.on_commit = std::move(on_commit);
    w.done = std::move(done);
    enqueue(payload, std::move(w));
    return answer.get();
}

void record_log::run_syncer() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return !queue_.empty() || stopping_; });
        if (queue_.empty()) return;  // stopping, nothing left
        std::vector<waiter> batch = std::move(queue_);
        queue_.clear();
        std::string bytes = std::move(pending_);
        pending_.clear();
        in_flight_ = true;
        const std::optional<failure> was_broken = broken_;
        lock.unlock();

        std::optional<failure> error = was_broken, breaks;
        if (!error) {
            if (auto w = file_.append(bytes); !w) {
                error = w.error();
                if (file_.torn()) breaks = error;
            } else {
                syncs_.fetch_add(1, std::memory_order_relaxed);
                if (auto s = file_.sync(); !s) error = breaks = s.error();
            }
        }
        if (!error) {
            appended_.fetch_add(batch.size(), std::memory_order_relaxed);
            for (waiter& w : batch)
                if (w.on_commit) w.on_commit();
        }

        lock.lock();
        if (breaks) broken_ = breaks;
        in_flight_ = false;
        idle_.notify_all();
        lock.unlock();
        for (waiter& w : batch) w.complete(error ? result<std::uint64_t>(*error) : result<std::uint64_t>(w.seq));
        lock.lock();
    }
}

std::size_t record_log::queued() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
}

void record_log::wait_idle(std::unique_lock<std::mutex>& lock) {
    idle_.wait(lock, [&] { return !in_flight_ && queue_.empty(); });
}

result<std::monostate> record_log::rewrite(std::span<const log_record> records) {
    for (std::size_t i = 0; i < records.size(); ++i) {
        if (records[i].payload.find('\n') != std::string::npos) return fail(errc::internal, "a record payload cannot contain a newline");
        if (i && records[i].seq <= records[i - 1].seq) return fail(errc::internal, "rewrite: sequence numbers must increase");
    }
    std::unique_lock lock(mutex_);
    wait_idle(lock);
    if (broken_) return *broken_;
    auto r = replace_file(report_.path, ".rewrite", [&](append_file& out) -> result<std::monostate> {
        std::string lines;
        for (const log_record& rec : records) lines += encode_line(rec.seq, rec.payload);
        return out.append(lines);
    });
    if (!r) return r;
    auto file = append_file::open(report_.path);
    if (!file) {
        broken_ = file.error();
        return std::move(file).error();
    }
    file_ = std::move(file).value();
    if (!records.empty()) last_seq_ = std::max(last_seq_, records.back().seq);
    return std::monostate{};
}

result<std::monostate> record_log::truncate() {
    std::unique_lock lock(mutex_);
    wait_idle(lock);
    if (broken_) return *broken_;
    if (auto r = file_.truncate(0); !r) return r;
    if (policy_ == fsync_policy::always) {
        if (auto r = file_.sync(); !r) {
            broken_ = r.error();
            return r;
        }
    }
    return std::monostate{};
}

}  // namespace offerd
