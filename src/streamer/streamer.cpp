// The streamer: a dispatcher coroutine reads the CSV in chunks and starts each row's request once
// the window has room and the row's member has nothing in flight (head-of-line, so sends stay in
// CSV order). Single-threaded: all state lives on one io_context.
#include "offerd/streamer/streamer.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <optional>
#include <ostream>
#include <random>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>

#include "offerd/codec/json_writer.hpp"
#include "offerd/codec/wire.hpp"
#include "offerd/domain/csv.hpp"
#include "offerd/domain/latency_histogram.hpp"
#include "offerd/net/http_client.hpp"
#include "offerd/net/tls.hpp"
#include "offerd/security/api_keys.hpp"

namespace offerd {

namespace {

// The transaction exactly as the CSV states it (strings as given, numbers parsed).
std::string row_body(const csv_record& rec, const csv_columns& cols, const transaction& t) {
    std::string out;
    json_writer w(out);
    w.begin_object()
        .member(field::member_id, std::string_view(t.member_id))
        .member(field::ts, std::string_view(rec.fields[cols.index[1]]))
        .member(field::type, std::string_view(rec.fields[cols.index[2]]))
        .member(field::points, t.points)
        .member(field::revenue, t.revenue)
        .end_object();
    return out;
}

constexpr std::uint64_t fnv_basis = 1469598103934665603ULL;
std::uint64_t fnv1a(std::uint64_t h, std::string_view s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
    return h;
}

// The CSV file (or standard input for "-"), read in chunks: only the unread part of the current
// record is held. Owns the descriptor it opened.
class csv_source {
public:
    static result<csv_source> open(const std::string& path) {
        if (path == "-") return csv_source(STDIN_FILENO, false, std::nullopt);
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return fail(errc::invalid_field, "cannot open CSV file '" + path + "': " + std::strerror(errno));
        struct stat st {};
        if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
            ::close(fd);
            return fail(errc::invalid_field, "cannot read CSV file '" + path + "': it is a directory");
        }
        std::optional<std::uint64_t> size;
        if (S_ISREG(st.st_mode)) size = static_cast<std::uint64_t>(st.st_size);
        return csv_source(fd, true, size);
    }
    csv_source(csv_source&& o) noexcept
        : fd_(std::exchange(o.fd_, -1)), owned_(o.owned_), size_(o.size_), bytes_read_(o.bytes_read_), reader_(std::move(o.reader_)) {}
    csv_source& operator=(csv_source&&) = delete;
    ~csv_source() {
        if (owned_ && fd_ >= 0) ::close(fd_);
    }

    // The next record; a read error is reported like a syntax error (reading stops there).
    csv_stream_reader::status next(csv_record& rec, failure& error) {
        for (;;) {
            const auto st = reader_.next(rec, error);
            if (st != csv_stream_reader::status::need_more) return st;
            const ssize_t n = ::read(fd_, chunk_.data(), chunk_.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                error = fail(errc::invalid_field, std::string("read error: ") + std::strerror(errno));
                return csv_stream_reader::status::error;
            }
            if (n == 0) {
                reader_.finish();
                continue;
            }
            bytes_read_ += static_cast<std::uint64_t>(n);
            reader_.feed(std::string_view(chunk_.data(), static_cast<std::size_t>(n)));
        }
    }
    std::string_view consumed() const noexcept { return reader_.consumed(); }
    // Share of the file read so far, when its size is known.
    std::optional<double> fraction_read() const {
        if (!size_ || *size_ == 0) return std::nullopt;
        return static_cast<double>(bytes_read_) / static_cast<double>(*size_);
    }

private:
    csv_source(int fd, bool owned, std::optional<std::uint64_t> size) : fd_(fd), owned_(owned), size_(size) {}

    int fd_;
    bool owned_;
    std::optional<std::uint64_t> size_;
    std::uint64_t bytes_read_ = 0;
    csv_stream_reader reader_;
    std::array<char, 64 * 1024> chunk_{};
};

// A row read from the file, kept until it is printed in CSV order.
struct pending_row {
    bool done = false;
    bool to_out = false;  // an answer (stdout) rather than a report (stderr)
    std::string text;
    std::string record;   // jsonl: the row's JSON object, printed on stdout
};

// One row's JSON object for --output jsonl.
struct row_result {
    std::size_t line = 0;
    std::string_view member;
    const char* outcome = "ok";
    unsigned status = 0;           // 0: not sent or no answer
    const std::string* offer = nullptr;
    std::int64_t latency_us = -1;  // -1: not sent
    bool replayed = false;
    std::string_view error{};
};

std::string row_record(const row_result& r) {
    std::string out;
    json_writer w(out);
    w.begin_object().member("line", static_cast<std::uint64_t>(r.line)).member("memberId", r.member).member("outcome", r.outcome);
    w.key("status");
    r.status ? w.value(static_cast<std::uint64_t>(r.status)) : w.null();
    w.key("offer");
    r.offer ? w.value(std::string_view(*r.offer)) : w.null();
    w.key("latency_ms");
    r.latency_us >= 0 ? w.value(static_cast<double>(r.latency_us) / 1000.0) : w.null();
    w.member("replayed", r.replayed);
    if (!r.error.empty()) w.member("error", r.error);
    w.end_object();
    return out;
}

struct stream_state {
    stream_state(const stream_config& c, std::ostream& o, std::ostream& e, asio::io_context& ctx, const url& target,
                 const client_limits& limits, csv_source src)
        : cfg(c), out(o), err(e), client(ctx.get_executor(), target, limits), source(std::move(src)), wake(ctx),
          progress_timer(ctx), signals(ctx) {}

    const stream_config& cfg;
    std::ostream& out;
    std::ostream& err;
    http_client client;
    csv_source source;
    std::deque<pending_row> pending;  // rows read and not yet printed; front is row number `printed`
    std::uint64_t printed = 0;
    std::size_t in_flight = 0;
    bool reading_done = false;
    bool interrupted = false;
    std::optional<failure> fatal;  // no usable header: run_stream fails with it
    std::unordered_set<std::string> busy;
    // Members with a row that failed for good: their later rows are held back. Value: that row's
    // line and a short reason.
    std::unordered_map<std::string, std::pair<std::size_t, std::string>> failed_members;
    asio::steady_timer wake;  // cancelled whenever a row finishes or a signal arrives
    latency_histogram latency;
    stream_summary summary;
    std::uint64_t prefix_hash = fnv_basis;  // of the bytes read up to the current row
    std::minstd_rand jitter{std::random_device{}()};
    asio::steady_timer progress_timer;  // cancelled when the stream ends
    asio::signal_set signals;           // cfg stop signals; cleared after the first

    std::uint64_t finished() const { return summary.ok + summary.replayed + summary.failed + summary.held; }

    pending_row& row_at(std::uint64_t seq) { return pending[static_cast<std::size_t>(seq - printed)]; }

    bool jsonl() const { return cfg.output == stream_output::jsonl; }

    // Appends a row already decided (a skipped or held row, a note) and prints what is in order;
    // `row` (jsonl) is its object on stdout.
    void add_done(std::string text, const row_result* row = nullptr) {
        pending.push_back(pending_row{true, false, std::move(text), row && jsonl() ? row_record(*row) : std::string()});
        flush_printed();
    }

    void flush_printed() {
        while (!pending.empty() && pending.front().done) {
            const pending_row& r = pending.front();
            if (!r.to_out) err << r.text << '\n';
            if (!(r.to_out && cfg.quiet)) {
                if (jsonl()) {
                    if (!r.record.empty()) out << r.record << '\n';
                } else if (r.to_out) {
                    out << r.text << '\n';
                }
            }
            pending.pop_front();
            ++printed;
        }
    }

    // After the last row: stop the progress reporter and the signal wait so run() returns.
    void end_if_finished() {
        if (!reading_done || in_flight > 0) return;
        progress_timer.cancel();
        signals.cancel();
    }
};

std::string where(std::size_t line, const std::string& member) {
    return "line " + std::to_string(line) + " (memberId " + (member.empty() ? "<empty>" : member) + "): ";
}

asio::awaitable<void> send_row(stream_state& s, std::uint64_t seq, std::size_t line, std::string member_id, std::string body,
                               std::string key) {
    const auto start = std::chrono::steady_clock::now();
    result<response> res = fail(errc::internal, {});
    for (int attempt = 0;; ++attempt) {
        res = co_await s.client.send(http::verb::post, s.cfg.path, body, call_options{{}, deadline::after(s.cfg.timeout), key, {}});
        const bool transient = !res || res->result_int() == 429 || res->result_int() >= 500;
        if (!transient || attempt >= s.cfg.retries || s.interrupted) break;
        ++s.summary.retried;
        const auto cap = s.cfg.backoff.count() << std::min(attempt, 10);
        asio::steady_timer pause(co_await asio::this_coro::executor,
                                 std::chrono::milliseconds(std::uniform_int_distribution<long>(cap / 2, cap)(s.jitter)));
        co_await pause.async_wait(nothrow);
    }
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
    s.latency.record(us);
    pending_row& out = s.row_at(seq);
    out.done = true;
    ++s.summary.statuses[res ? res->result_int() : 0u];
    std::string reason;
    row_result row{line, member_id, "failed", res ? res->result_int() : 0u, nullptr, us};
    result<std::string> offer = fail(errc::internal, {});
    if (!res) {
        reason = res.error().detail;
        out.text = where(line, member_id) + "failed: " + reason;
        ++s.summary.failed;
        row.error = reason;
    } else if (res->result() != http::status::ok) {
        reason = "HTTP " + std::to_string(res->result_int());
        out.text = where(line, member_id) + "failed: " + reason + " " + res->body();
        ++s.summary.failed;
        row.error = res->body().empty() ? std::string_view(reason) : std::string_view(res->body());  // an empty 5xx still says why
    } else {
        out.to_out = true;
        offer = decode_offer(res->body());
        if (offer) ++s.summary.offers[*offer];
        row.replayed = (*res)["Idempotent-Replayed"] == "true";
        row.outcome = row.replayed ? "replayed" : "ok";
        row.offer = offer ? &*offer : nullptr;
        ++(row.replayed ? s.summary.replayed : s.summary.ok);
        out.text = std::move(res->body());
    }
    if (s.jsonl()) out.record = row_record(row);
    if (!out.to_out) s.failed_members.emplace(member_id, std::pair{line, std::move(reason)});
    --s.in_flight;
    s.busy.erase(member_id);
    s.flush_printed();
    s.wake.cancel();
    s.end_if_finished();
}

asio::awaitable<void> wait_for_change(stream_state& s) {
    s.wake.expires_at(std::chrono::steady_clock::time_point::max());
    co_await s.wake.async_wait(nothrow);
}

// Reads the header, then each row in turn: skipped rows are reported, a row behind a failed one
// of its member is held back (sending it would store it before the failed one, which a rerun then
// appends after it), any other row is sent once its member has nothing in flight.
asio::awaitable<void> dispatch(stream_state& s) {
    auto ex = co_await asio::this_coro::executor;
    csv_record rec;
    failure syntax;
    if (s.source.next(rec, syntax) != csv_stream_reader::status::record) {
        s.fatal = fail(errc::invalid_field, "'" + s.cfg.csv + "' has no header" + (syntax.detail.empty() ? "" : ": " + syntax.detail));
        s.reading_done = true;
        s.end_if_finished();
        co_return;
    }
    s.prefix_hash = fnv1a(s.prefix_hash, s.source.consumed());
    auto cols = map_csv_header(rec.fields);
    if (!cols) {
        s.fatal = fail(errc::invalid_field, "'" + s.cfg.csv + "': " + cols.error().detail);
        s.reading_done = true;
        s.end_if_finished();
        co_return;
    }
    const std::size_t window = std::max(s.cfg.max_pending, s.cfg.concurrency + 1);
    while (!s.interrupted) {
        while (s.pending.size() >= window && !s.interrupted) co_await wait_for_change(s);
        if (s.interrupted) break;
        const auto st = s.source.next(rec, syntax);
        if (st == csv_stream_reader::status::end) break;
        if (st != csv_stream_reader::status::record) {
            s.summary.csv_truncated = true;
            s.add_done("CSV syntax error, stopped reading: " + syntax.detail);
            break;
        }
        ++s.summary.rows_read;
        s.prefix_hash = fnv1a(s.prefix_hash, s.source.consumed());
        auto t = csv_row_to_transaction(rec, *cols);
        if (!t) {
            ++s.summary.skipped;
            const std::string id = cols->index[0] < rec.fields.size() ? rec.fields[cols->index[0]] : std::string();
            const row_result row{rec.line, id, "skipped", 0, nullptr, -1, false, t.error().detail};
            s.add_done(where(rec.line, id) + "skipped: " + t.error().detail, &row);
            continue;
        }
        while ((s.in_flight >= s.cfg.concurrency || s.busy.contains(t->member_id)) && !s.interrupted) co_await wait_for_change(s);
        if (s.interrupted) break;
        if (auto f = s.failed_members.find(t->member_id); f != s.failed_members.end()) {
            ++s.summary.held;
            const std::string why = "held back behind line " + std::to_string(f->second.first) + " which failed (" + f->second.second + ")";
            const row_result row{rec.line, t->member_id, "held", 0, nullptr, -1, false, why};
            s.add_done(where(rec.line, t->member_id) + "not sent: " + why, &row);
            continue;
        }
        // The key (hash of the file up to this row + line) lets the orchestrator recognise this
        // row again: in a retry, in a rerun of the same file, or of the file with rows appended.
        char key[48];
        std::snprintf(key, sizeof key, "%016llx-%zu", static_cast<unsigned long long>(s.prefix_hash), rec.line);
        s.pending.push_back(pending_row{});
        const std::uint64_t seq = s.printed + s.pending.size() - 1;
        ++s.in_flight;
        ++s.summary.sent;
        s.busy.insert(t->member_id);
        asio::co_spawn(ex, send_row(s, seq, rec.line, t->member_id, row_body(rec, *cols, *t), key), asio::detached);
    }
    s.reading_done = true;
    s.end_if_finished();
}

// Reports progress until the stream ends.
asio::awaitable<void> report_progress(stream_state& s, progress_options opt) {
    auto& timer = s.progress_timer;
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
        if (s.reading_done && s.in_flight == 0) co_return;
        timer.expires_after(opt.every);
        auto [ec] = co_await timer.async_wait(nothrow);
        const bool over = s.reading_done && s.in_flight == 0;
        if (ec && !opt.terminal) co_return;  // finished: the summary follows
        const std::uint64_t done = s.finished();
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
        char read[64] = "";
        if (auto f = s.source.fraction_read()) {
            const double eta = *f > 0 ? secs * (1 - *f) / *f : 0;
            std::snprintf(read, sizeof read, ", %.0f%% of the file read, eta %.1f s", 100 * *f, eta);
        }
        char line[256];
        std::snprintf(line, sizeof line, "progress: %llu rows answered%s, %.0f rows/s, %llu failed, %llu held, %llu replayed",
                      static_cast<unsigned long long>(done), read, rate, static_cast<unsigned long long>(s.summary.failed),
                      static_cast<unsigned long long>(s.summary.held), static_cast<unsigned long long>(s.summary.replayed));
        if (opt.terminal) s.err << '\r' << line << "\x1b[K" << std::flush;
        else s.err << line << '\n';
        if (over || ec) {
            if (opt.terminal) s.err << '\n';
            co_return;
        }
    }
}

// Checks the target answers at all (before reading a byte of the file), then streams. s
// outlives the io_context's run(), so the reference parameters of this and the coroutines it
// spawns stay valid.
asio::awaitable<void> probe_then_stream(stream_state& s, std::optional<failure>& unreachable, progress_options progress) {
    auto up = co_await s.client.send(http::verb::get, "/health", {}, call_options{{}, deadline::after(s.cfg.timeout), {}, {}});
    if (!up) {
        unreachable = std::move(up).error();
        s.signals.cancel();
        co_return;
    }
    if (progress.every.count() > 0) asio::co_spawn(co_await asio::this_coro::executor, report_progress(s, progress), asio::detached);
    co_await dispatch(s);
}

}  // namespace

result<stream_summary> run_stream(const stream_config& cfg, std::ostream& out, std::ostream& err, const progress_options& progress,
                                  const std::vector<int>& stop_signals) {
    auto target = parse_url(cfg.target);
    if (!target) return fail(errc::invalid_field, "--target: " + target.error().detail);
    if (!cfg.key_file.empty()) {
        auto key = read_secret_file(cfg.key_file);
        if (!key || !parse_bearer("Bearer " + *key))
            return fail(errc::invalid_field, "--key-file: '" + cfg.key_file + "' does not hold one Bearer token");
        target->authorization = "Bearer " + *key;
    }
    if (target->tls) {
        auto tls = make_client_tls_context(cfg.ca_file);
        if (!tls) return fail(errc::invalid_field, (cfg.ca_file.empty() ? "" : "--ca: ") + tls.error().detail);
        target->tls_context = std::move(tls).value();
    }
    if (cfg.concurrency == 0) return fail(errc::invalid_field, "--concurrency must be at least 1");
    auto source = csv_source::open(cfg.csv);
    if (!source) return std::move(source).error();

    asio::io_context ctx(1);
    client_limits limits;
    limits.timeout = cfg.timeout;
    limits.max_idle = cfg.concurrency;
    stream_state s(cfg, out, err, ctx, *target, limits, std::move(*source));
    for (int sig : stop_signals) s.signals.add(sig);
    if (!stop_signals.empty())
        s.signals.async_wait([&s](const boost::system::error_code& ec, int) {
            if (ec) return;
            s.interrupted = true;
            s.summary.interrupted = true;
            s.signals.clear();  // a second signal acts as if we had not asked: it ends the process
            s.wake.cancel();
            s.err << "interrupted: no further rows are sent; waiting for the " << s.in_flight << " in flight\n";
        });

    const auto start = std::chrono::steady_clock::now();
    std::optional<failure> unreachable;
    asio::co_spawn(ctx, probe_then_stream(s, unreachable, progress), asio::detached);
    ctx.run();
    if (unreachable) return fail(errc::upstream_unavailable, "cannot reach the orchestrator at " + cfg.target + ": " + unreachable->detail);
    if (s.fatal) return *s.fatal;

    s.summary.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    s.summary.p50_ms = static_cast<double>(s.latency.percentile(0.5)) / 1000.0;
    s.summary.p99_ms = static_cast<double>(s.latency.percentile(0.99)) / 1000.0;
    out.flush();
    return s.summary;
}

int stream_exit_status(const stream_summary& s) noexcept {
    if (s.interrupted) return 130;
    return s.failed == 0 && s.held == 0 && !s.csv_truncated ? 0 : 1;
}

std::string format_summary(const stream_summary& s) {
    std::ostringstream o;
    o << "statuses:";
    for (const auto& [status, n] : s.statuses) o << ' ' << (status ? std::to_string(status) : std::string("no_answer")) << '=' << n;
    o << "\noffers:";
    bool first = true;
    for (const auto& [offer, n] : s.offers) {
        o << (first ? " " : ", ") << offer << '=' << n;
        first = false;
    }
    o << '\n';
    o.setf(std::ios::fixed);
    o.precision(3);
    o << "summary: rows_read=" << s.rows_read << " sent=" << s.sent << " ok=" << s.ok << " replayed=" << s.replayed
      << " skipped=" << s.skipped << " failed=" << s.failed << " held=" << s.held << " retried=" << s.retried
      << " elapsed_s=" << s.elapsed_s;
    o.precision(1);
    o << " rows_per_s=" << s.rows_per_s();
    o.precision(3);
    o << " p50_ms=" << s.p50_ms << " p99_ms=" << s.p99_ms;
    if (s.csv_truncated) o << " csv_truncated=true";
    if (s.interrupted) o << " interrupted=true";
    return o.str();
}

std::string format_summary_json(const stream_summary& s) {
    std::string out;
    json_writer w(out);
    w.begin_object()
        .member("rows_read", s.rows_read)
        .member("sent", s.sent)
        .member("ok", s.ok)
        .member("replayed", s.replayed)
        .member("skipped", s.skipped)
        .member("failed", s.failed)
        .member("held", s.held)
        .member("retried", s.retried)
        .member("elapsed_s", s.elapsed_s)
        .member("rows_per_s", s.rows_per_s())
        .member("p50_ms", s.p50_ms)
        .member("p99_ms", s.p99_ms)
        .member("csv_truncated", s.csv_truncated)
        .member("interrupted", s.interrupted);
    w.key("statuses").begin_object();
    for (const auto& [status, n] : s.statuses) w.member(status ? std::to_string(status) : std::string("no_answer"), n);
    w.end_object().key("offers").begin_object();
    for (const auto& [offer, n] : s.offers) w.member(offer, n);
    w.end_object().member("exit_status", stream_exit_status(s)).end_object();
    return out;
}

}  // namespace offerd
