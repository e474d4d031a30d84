// The streamer: a dispatcher coroutine walks the rows in order and starts each request once the
// window has room and the row's member has nothing in flight (head-of-line, so sends stay in
// CSV order). Single-threaded: all state lives on one io_context.
#include "offerd/streamer/streamer.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <ostream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "offerd/codec/json_writer.hpp"
#include "offerd/codec/wire.hpp"
#include "offerd/domain/csv.hpp"
#include "offerd/domain/latency_histogram.hpp"
#include "offerd/net/http_client.hpp"
#include "offerd/security/api_keys.hpp"

namespace offerd {

namespace {

struct row {
    std::size_t line;
    std::string member_id;
    std::string body;
};

struct row_result {
    bool done = false;
    bool ok = false;
    std::string text;  // the answer, or the failure line
};

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

std::uint64_t fnv1a(std::string_view s) {
    std::uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
    return h;
}

struct stream_state {
    stream_state(const stream_config& c, std::ostream& o, std::ostream& e, asio::io_context& ctx, const url& target,
                 const client_limits& limits)
        : cfg(c), out(o), err(e), client(ctx.get_executor(), target, limits), wake(ctx), progress_timer(ctx) {}

    const stream_config& cfg;
    std::ostream& out;
    std::ostream& err;
    http_client client;
    std::vector<row> rows;
    std::vector<row_result> results;
    std::size_t next_to_print = 0;
    std::size_t in_flight = 0;
    std::unordered_set<std::string> busy;
    // Members with a row that failed for good: their later rows are held back. Value: that row's
    // line and a short reason.
    std::unordered_map<std::string, std::pair<std::size_t, std::string>> failed_members;
    asio::steady_timer wake;
    latency_histogram latency;
    stream_summary summary;
    std::string key_prefix;
    std::minstd_rand jitter{std::random_device{}()};
    asio::steady_timer progress_timer;  // cancelled when the last row is answered

    std::uint64_t finished() const { return summary.ok + summary.failed + summary.held; }

    void flush_printed() {
        while (next_to_print < results.size() && results[next_to_print].done) {
            const row_result& r = results[next_to_print];
            if (r.ok) {
                if (!cfg.quiet) out << r.text << '\n';
            } else {
                err << r.text << '\n';
            }
            ++next_to_print;
        }
    }
};

asio::awaitable<void> send_row(stream_state& s, std::size_t i) {
    const row& r = s.rows[i];
    const auto start = std::chrono::steady_clock::now();
    // The key (file identity + line) lets the orchestrator recognise a retry of this row.
    const std::string key = s.key_prefix + std::to_string(r.line);
    result<response> res = fail(errc::internal, {});
    for (int attempt = 0;; ++attempt) {
        res = co_await s.client.send(http::verb::post, s.cfg.path, r.body, call_options{{}, deadline::after(s.cfg.timeout), key, {}});
        const bool transient = !res || res->result_int() == 429 || res->result_int() >= 500;
        if (!transient || attempt >= s.cfg.retries) break;
        ++s.summary.retried;
        const auto cap = s.cfg.backoff.count() << std::min(attempt, 10);
        asio::steady_timer pause(co_await asio::this_coro::executor,
                                 std::chrono::milliseconds(std::uniform_int_distribution<long>(cap / 2, cap)(s.jitter)));
        co_await pause.async_wait(nothrow);
    }
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
    s.latency.record(us);
    row_result& out = s.results[i];
    out.done = true;
    const std::string where = "line " + std::to_string(r.line) + " (memberId " + r.member_id + "): ";
    ++s.summary.statuses[res ? res->result_int() : 0u];
    std::string reason;
    if (!res) {
        reason = res.error().detail;
        out.text = where + "failed: " + reason;
    } else if (res->result() != http::status::ok) {
        reason = "HTTP " + std::to_string(res->result_int());
        out.text = where + "failed: " + reason + " " + res->body();
    } else {
        out.ok = true;
        if (auto offer = decode_offer(res->body())) ++s.summary.offers[*offer];
        out.text = std::move(res->body());
    }
    ++(out.ok ? s.summary.ok : s.summary.failed);
    if (!out.ok) s.failed_members.emplace(r.member_id, std::pair{r.line, std::move(reason)});
    if (s.finished() == s.rows.size()) s.progress_timer.cancel();
    --s.in_flight;
    s.busy.erase(r.member_id);
    s.flush_printed();
    s.wake.cancel();
}

// A later row of a member whose earlier row failed for good is not sent: sending it would store
// it before the failed one, which a rerun then appends after it.
void hold_back(stream_state& s, std::size_t i, const std::pair<std::size_t, std::string>& behind) {
    const row& r = s.rows[i];
    row_result& out = s.results[i];
    out.done = true;
    out.text = "line " + std::to_string(r.line) + " (memberId " + r.member_id + "): not sent: held back behind line " +
               std::to_string(behind.first) + " which failed (" + behind.second + ")";
    ++s.summary.held;
    if (s.finished() == s.rows.size()) s.progress_timer.cancel();
    s.flush_printed();
}

asio::awaitable<void> dispatch(stream_state& s) {
    auto ex = co_await asio::this_coro::executor;
    for (std::size_t i = 0; i < s.rows.size(); ++i) {
        while (s.in_flight >= s.cfg.concurrency || s.busy.contains(s.rows[i].member_id)) {
            s.wake.expires_at(std::chrono::steady_clock::time_point::max());
            co_await s.wake.async_wait(nothrow);
        }
        if (auto f = s.failed_members.find(s.rows[i].member_id); f != s.failed_members.end()) {
            hold_back(s, i, f->second);
            continue;
        }
        ++s.in_flight;
        ++s.summary.sent;
        s.busy.insert(s.rows[i].member_id);
        asio::co_spawn(ex, send_row(s, i), asio::detached);
    }
}

// Reports progress until every row has an answer.
asio::awaitable<void> report_progress(stream_state& s, progress_options opt) {
    auto& timer = s.progress_timer;
    const auto start = std::chrono::steady_clock::now();
    const std::size_t total = s.rows.size();
    for (;;) {
        timer.expires_after(opt.every);
        auto [ec] = co_await timer.async_wait(nothrow);
        const std::uint64_t done = s.finished();
        if (ec && !opt.terminal) co_return;  // finished: the summary follows
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
        const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0;
        char line[160];
        std::snprintf(line, sizeof line, "progress: %llu/%zu rows, %.0f rows/s, eta %.1f s, %llu failed, %llu held",
                      static_cast<unsigned long long>(done), total, rate, eta, static_cast<unsigned long long>(s.summary.failed),
                      static_cast<unsigned long long>(s.summary.held));
        if (opt.terminal) s.err << '\r' << line << "\x1b[K" << std::flush;
        else s.err << line << '\n';
        if (done >= total) {
            if (opt.terminal) s.err << '\n';
            co_return;
        }
    }
}

asio::awaitable<result<bool>> probe(http_client& client, std::chrono::milliseconds timeout) {
    auto res = co_await client.send(http::verb::get, "/health", {}, call_options{{}, deadline::after(timeout), {}, {}});
    if (!res) co_return std::move(res).error();
    co_return true;
}

// Checks the target answers at all, then streams. s outlives the io_context's run(), so the
// reference parameters of this and the coroutines it spawns stay valid.
asio::awaitable<void> probe_then_stream(stream_state& s, std::optional<failure>& unreachable, progress_options progress) {
    auto up = co_await probe(s.client, s.cfg.timeout);
    if (!up) {
        unreachable = std::move(up).error();
        co_return;
    }
    if (!s.rows.empty() && progress.every.count() > 0)
        asio::co_spawn(co_await asio::this_coro::executor, report_progress(s, progress), asio::detached);
    co_await dispatch(s);
}

}  // namespace

result<stream_summary> run_stream(const stream_config& cfg, std::ostream& out, std::ostream& err,
                                  const progress_options& progress) {
    auto target = parse_url(cfg.target);
    if (!target) return fail(errc::invalid_field, "--target: " + target.error().detail);
    if (!cfg.key_file.empty()) {
        auto key = read_secret_file(cfg.key_file);
        if (!key || !parse_bearer("Bearer " + *key))
            return fail(errc::invalid_field, "--key-file: '" + cfg.key_file + "' does not hold one Bearer token");
        target->authorization = "Bearer " + *key;
    }
    if (cfg.concurrency == 0) return fail(errc::invalid_field, "--concurrency must be at least 1");
    std::ifstream file(cfg.csv, std::ios::binary);
    if (!file) return fail(errc::invalid_field, "cannot open CSV file '" + cfg.csv + "'");
    const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());

    asio::io_context ctx(1);
    client_limits limits;
    limits.timeout = cfg.timeout;
    limits.max_idle = cfg.concurrency;
    stream_state s(cfg, out, err, ctx, *target, limits);
    char prefix[32];
    std::snprintf(prefix, sizeof prefix, "%016llx-", static_cast<unsigned long long>(fnv1a(text)));
    s.key_prefix = prefix;

    csv_reader reader(text);
    csv_record rec;
    failure syntax;
    if (!reader.next(rec, syntax))
        return fail(errc::invalid_field, "'" + cfg.csv + "' has no header" + (syntax.detail.empty() ? "" : ": " + syntax.detail));
    auto cols = map_csv_header(rec.fields);
    if (!cols) return fail(errc::invalid_field, "'" + cfg.csv + "': " + cols.error().detail);
    while (reader.next(rec, syntax)) {
        ++s.summary.rows_read;
        auto t = csv_row_to_transaction(rec, *cols);
        if (!t) {
            ++s.summary.skipped;
            const std::string id = cols->index[0] < rec.fields.size() ? rec.fields[cols->index[0]] : std::string();
            err << "line " << rec.line << " (memberId " << (id.empty() ? "<empty>" : id) << "): skipped: " << t.error().detail << '\n';
            continue;
        }
        s.rows.push_back(row{rec.line, t->member_id, row_body(rec, *cols, *t)});
    }
    if (!syntax.detail.empty()) {
        s.summary.csv_truncated = true;
        err << "CSV syntax error, stopped reading: " << syntax.detail << '\n';
    }
    s.results.resize(s.rows.size());

    const auto start = std::chrono::steady_clock::now();
    std::optional<failure> unreachable;
    asio::co_spawn(ctx, probe_then_stream(s, unreachable, progress), asio::detached);
    ctx.run();
    if (unreachable) return fail(errc::upstream_unavailable, "cannot reach the orchestrator at " + cfg.target + ": " + unreachable->detail);

    s.summary.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    s.summary.p50_ms = static_cast<double>(s.latency.percentile(0.5)) / 1000.0;
    s.summary.p99_ms = static_cast<double>(s.latency.percentile(0.99)) / 1000.0;
    out.flush();
    return s.summary;
}

int stream_exit_status(const stream_summary& s) noexcept { return s.failed == 0 && s.held == 0 && !s.csv_truncated ? 0 : 1; }

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
    const double rate = s.elapsed_s > 0 ? static_cast<double>(s.sent) / s.elapsed_s : 0.0;
    o << "summary: rows_read=" << s.rows_read << " sent=" << s.sent << " ok=" << s.ok << " skipped=" << s.skipped
      << " failed=" << s.failed << " held=" << s.held << " retried=" << s.retried << " elapsed_s=" << s.elapsed_s;
    o.precision(1);
    o << " rows_per_s=" << rate;
    o.precision(3);
    o << " p50_ms=" << s.p50_ms << " p99_ms=" << s.p99_ms;
    if (s.csv_truncated) o << " csv_truncated=true";
    return o.str();
}

}  // namespace offerd
