// PostgreSQL over Asio: libpq in pipeline mode on a non-blocking socket, with group commit.
//
// How state is protected: everything below lives in `impl` and is touched only on the
// connection's executor (one io_context thread): the public functions, the coroutines (run,
// connect_once, read_loop, exec, wait_connected) and the completion handlers. No locks. Every
// coroutine and handler holds a shared_ptr<impl>, so the `connection` object may be destroyed
// right after stop() while they finish; `gen_` (bumped on every drop) tells a handler of an
// earlier connection to do nothing.
//
// The pipeline: what we send is recorded, in order, as `unit`s, each closed by one
// PQpipelineSync; results arrive in the same order and are matched slot by slot. A read is one
// unit. Writes queue in `writes_` while a group commit is in flight and then leave as one
// unit: the statements between two syncs run in one implicit transaction, committed by the sync
// (so one WAL flush for the group; an explicit BEGIN/COMMIT would leave the session in an
// aborted transaction block after a refused write, failing whatever was pipelined behind it).
// A group PostgreSQL refuses is rolled back whole and each of its writes re-runs alone.
#include "offerd/store/pg_connection.hpp"

#include <fcntl.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <charconv>
#include <deque>
#include <unordered_map>
#include <utility>

#include "offerd/obs/log.hpp"

namespace offerd::pg {

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
using namespace asio::experimental::awaitable_operators;

struct conn_closer {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
using conn_ptr = std::unique_ptr<PGconn, conn_closer>;

struct result_closer {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using result_ptr = std::unique_ptr<PGresult, result_closer>;

// libpq's messages end with a newline (several lines at times): keep the first line.
std::string first_line(const char* s) {
    std::string out = s ? s : "";
    if (const auto nl = out.find('\n'); nl != std::string::npos) out.resize(nl);
    return out;
}

std::string conn_error(PGconn* c) {
    std::string e = c ? first_line(PQerrorMessage(c)) : std::string();
    return e.empty() ? "connection failed" : e;
}

// A statement PostgreSQL refused (or libpq could not run).
rows refused(const PGresult* r) {
    rows out;
    const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char* msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    out.sqlstate = code && *code ? code : "XX000";
    out.message = msg && *msg ? msg : first_line(PQresultErrorMessage(r));
    if (out.message.empty()) out.message = PQresStatus(PQresultStatus(r));
    return out;
}

rows to_rows(PGresult* r) {
    const ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && st != PGRES_EMPTY_QUERY) return refused(r);
    rows out;
    const char* n = PQcmdTuples(r);
    if (n && *n) std::from_chars(n, n + std::char_traits<char>::length(n), out.affected);
    const int tuples = PQntuples(r), fields = PQnfields(r);
    out.data.resize(static_cast<std::size_t>(tuples));
    for (int i = 0; i < tuples; ++i) {
        auto& row = out.data[static_cast<std::size_t>(i)];
        row.reserve(static_cast<std::size_t>(fields));
        for (int j = 0; j < fields; ++j) {
            if (PQgetisnull(r, i, j)) row.emplace_back(std::nullopt);
            else row.emplace_back(std::string(PQgetvalue(r, i, j), static_cast<std::size_t>(PQgetlength(r, i, j))));
        }
    }
    return out;
}

// One exec waiting for its answer.
struct op {
    op(const asio::any_io_executor& ex, std::string n, std::vector<std::optional<std::string>> p)
        : name(std::move(n)), params(std::move(p)), timer(ex) {}
    std::string name;
    std::vector<std::optional<std::string>> params;
    asio::steady_timer timer;  // expires at the caller's deadline; cancelled when the answer is in
    std::optional<result<rows>> outcome;
    bool abandoned = false;  // the caller's deadline passed first: the answer is dropped
};
using op_ptr = std::shared_ptr<op>;

// The statements sent before one PQpipelineSync, and what their results say so far.
struct unit {
    enum class type : std::uint8_t {
        prepare,  // the statements prepared on (re)connect
        read,     // one read
        write,    // one write on its own (a group of one, or a write re-run after its group failed)
        group,    // several writes in one implicit transaction
    };
    enum class role : std::uint8_t { prepare, statement };
    struct slot {
        role r;
        std::size_t index;  // prepare: into statements_; statement: into ops
    };
    type t = type::read;
    bool is_group_commit = false;  // the group commit in flight: the next one leaves when it ends
    std::vector<op_ptr> ops;
    std::vector<slot> slots;  // one per result (PQgetResult ... NULL) expected before the sync
    std::vector<std::optional<rows>> answers;  // per op; nullopt: skipped (pipeline aborted)
    std::optional<rows> first_error;  // the first refusal in the unit (a prepare, a statement, the commit)
    std::size_t done = 0;  // slots whose results are complete
    bool got = false;      // the current slot has had its result
    bool failed = false;   // something in the unit was refused: a group was rolled back
};

}  // namespace

struct connection::impl : std::enable_shared_from_this<connection::impl> {
    impl(asio::any_io_executor ex, connection_config cfg, std::vector<statement> statements, logger* log)
        : ex_(std::move(ex)),
          cfg_(std::move(cfg)),
          statements_(std::move(statements)),
          log_(log),
          sock_(ex_),
          connect_timer_(ex_),
          retry_timer_(ex_) {
        for (std::size_t i = 0; i < statements_.size(); ++i) index_.emplace(statements_[i].name, i);
        prepared_.assign(statements_.size(), prep::no);
        if (cfg_.max_batch == 0) cfg_.max_batch = 1;
    }

    enum class prep : std::uint8_t { no, sent, yes };

    asio::any_io_executor ex_;
    connection_config cfg_;
    std::vector<statement> statements_;
    std::unordered_map<std::string, std::size_t> index_;
    logger* log_;
    connection_stats stats_;

    conn_ptr conn_;                        // null while not connected
    asio::posix::stream_descriptor sock_;  // dup(PQsocket(conn_)), for readiness only
    std::uint64_t gen_ = 0;                // bumped on every drop
    bool started_ = false, stopped_ = false;
    std::atomic<bool> connected_{false};  // connected and the statements' preparation answered (read by connected() on any thread)
    bool pumping_ = false, pump_again_ = false, write_armed_ = false;
    std::vector<prep> prepared_;
    std::deque<unit> units_;      // sent, results awaited, in order
    std::deque<op_ptr> writes_;   // writes waiting for the next group commit
    bool group_in_flight_ = false;
    bool ever_connected_ = false;
    std::uint64_t sessions_ready_ = 0;  // connections that got as far as connected_
    bool down_logged_ = false;  // the current outage was logged
    std::string target_;        // host:port/dbname, for logs (never the password)
    asio::steady_timer connect_timer_;
    asio::steady_timer retry_timer_;
    std::vector<std::shared_ptr<asio::steady_timer>> waiters_;  // wait_connected callers

    // --- logging --------------------------------------------------------------------------
    void log_warn(std::string_view event, std::string_view error) {
        if (log_ && log_->enabled(log_level::warn))
            log_event(*log_, log_level::warn, event).with("target", target_).with("error", error);
    }
    void note_down(std::string_view why) {
        if (down_logged_ || stopped_) return;
        down_logged_ = true;
        log_warn(ever_connected_ ? "pg_connection_lost" : "pg_connect_failed", why);
    }

    // --- completion -------------------------------------------------------------------------
    static void complete(op& o, result<rows> r) {
        if (o.outcome || o.abandoned) return;
        o.outcome.emplace(std::move(r));
        o.timer.cancel();
    }

    void wake_waiters() {
        for (auto& w : waiters_) w->cancel();
        waiters_.clear();
    }

    // Closes the connection; every statement sent or queued fails with upstream_unavailable.
    void drop(const std::string& why) {
        const bool had = conn_ != nullptr;
        if (had) {
            ++gen_;
            boost::system::error_code ec;
            sock_.close(ec);
            conn_.reset();
        }
        const bool was_up = connected_;
        connected_ = false;
        write_armed_ = false;
        group_in_flight_ = false;
        auto units = std::move(units_);
        units_.clear();
        auto writes = std::move(writes_);
        writes_.clear();
        const failure f = fail(errc::upstream_unavailable, "PostgreSQL connection lost: " + why);
        for (auto& u : units)
            for (auto& o : u.ops) complete(*o, f);
        for (auto& o : writes) complete(*o, f);
        if (had && !stopped_) {
            if (was_up) down_logged_ = false;  // a new outage
            note_down(why);
        }
    }

    // --- sending ----------------------------------------------------------------------------
    bool send_statement(unit& u, std::size_t i) {
        const op& o = *u.ops[i];
        if (const auto it = index_.find(o.name); it != index_.end() && prepared_[it->second] == prep::no) {
            // Not prepared on this connection (its preparation was refused): try again now.
            if (!PQsendPrepare(conn_.get(), o.name.c_str(), statements_[it->second].sql.c_str(), 0, nullptr)) return false;
            prepared_[it->second] = prep::sent;
            u.slots.push_back({unit::role::prepare, it->second});
        }
        std::vector<const char*> values;
        values.reserve(o.params.size());
        for (const auto& p : o.params) values.push_back(p ? p->c_str() : nullptr);
        if (!PQsendQueryPrepared(conn_.get(), o.name.c_str(), static_cast<int>(values.size()), values.data(), nullptr,
                                 nullptr, 0))
            return false;
        u.slots.push_back({unit::role::statement, i});
        return true;
    }

    void send_unit(unit u) {
        if (!conn_) {
            for (auto& o : u.ops) complete(*o, fail(errc::upstream_unavailable, "not connected to PostgreSQL"));
            return;
        }
        u.answers.resize(u.ops.size());
        units_.push_back(std::move(u));
        unit& sent = units_.back();  // deque::push_back keeps references valid
        bool ok = true;
        for (std::size_t i = 0; ok && i < sent.ops.size(); ++i) ok = send_statement(sent, i);
        if (!ok || !PQpipelineSync(conn_.get())) {
            drop(conn_error(conn_.get()));
            return;
        }
        pump();
    }

    void send_read(op_ptr o) {
        unit u;
        u.t = unit::type::read;
        u.ops.push_back(std::move(o));
        send_unit(std::move(u));
    }

    void send_alone(op_ptr o) {
        unit u;
        u.t = unit::type::write;
        u.ops.push_back(std::move(o));
        send_unit(std::move(u));
    }

    // Sends the queued writes (up to max_batch) as the next group commit, unless one is in flight.
    void send_group() {
        if (group_in_flight_ || !connected_) return;
        unit u;
        while (!writes_.empty() && u.ops.size() < cfg_.max_batch) {
            op_ptr o = std::move(writes_.front());
            writes_.pop_front();
            if (!o->abandoned) u.ops.push_back(std::move(o));
        }
        if (u.ops.empty()) return;
        u.t = u.ops.size() == 1 ? unit::type::write : unit::type::group;
        u.is_group_commit = true;
        group_in_flight_ = true;
        send_unit(std::move(u));
    }

    void send_prepares() {
        unit u;
        u.t = unit::type::prepare;
        units_.push_back(std::move(u));
        unit& sent = units_.back();
        for (std::size_t i = 0; i < statements_.size(); ++i) {
            if (!PQsendPrepare(conn_.get(), statements_[i].name.c_str(), statements_[i].sql.c_str(), 0, nullptr)) {
                drop(conn_error(conn_.get()));
                return;
            }
            prepared_[i] = prep::sent;
            sent.slots.push_back({unit::role::prepare, i});
        }
        if (!PQpipelineSync(conn_.get())) {
            drop(conn_error(conn_.get()));
            return;
        }
        pump();
    }

    // --- receiving --------------------------------------------------------------------------
    static rows answer(const unit& u, std::size_t i) {
        if (u.t != unit::type::group && u.failed && u.first_error && u.answers[i] && u.answers[i]->ok())
            return *u.first_error;  // the statement ran but its transaction did not commit
        if (u.answers[i]) return *u.answers[i];
        if (u.first_error) return *u.first_error;
        return rows{"XX000", "PostgreSQL skipped the statement", 0, {}};
    }

    void on_ready() {
        connected_ = true;
        ++sessions_ready_;
        connect_timer_.cancel();
        if (ever_connected_) ++stats_.reconnects;
        if (log_ && log_->enabled(log_level::info)) {
            if (down_logged_) log_event(*log_, log_level::info, "pg_connection_restored").with("target", target_);
            else if (!ever_connected_) log_event(*log_, log_level::info, "pg_connected").with("target", target_);
        }
        ever_connected_ = true;
        down_logged_ = false;
        wake_waiters();
    }

    void finish_unit() {
        unit u = std::move(units_.front());
        units_.pop_front();
        const std::size_t n = u.ops.size();
        switch (u.t) {
        case unit::type::prepare:
            on_ready();
            break;
        case unit::type::read:
            ++stats_.reads;
            complete(*u.ops[0], answer(u, 0));
            break;
        case unit::type::write: {
            rows a = answer(u, 0);
            if (a.ok()) {
                ++stats_.commits;
                ++stats_.writes;
            }
            complete(*u.ops[0], std::move(a));
            break;
        }
        case unit::type::group:
            if (!u.failed) {
                ++stats_.commits;
                stats_.writes += n;
                for (std::size_t i = 0; i < n; ++i) complete(*u.ops[i], answer(u, i));
            } else {
                // Rolled back whole: each write again on its own, so only the refused one fails.
                for (auto& o : u.ops) {
                    if (!conn_) {  // lost while re-sending: the rest fail like everything pending
                        complete(*o, fail(errc::upstream_unavailable, "PostgreSQL connection lost"));
                        continue;
                    }
                    if (o->abandoned) continue;
                    ++stats_.retried_alone;
                    send_alone(o);
                }
            }
            break;
        }
        if (u.is_group_commit && conn_) {
            group_in_flight_ = false;
            send_group();
        }
    }

    void on_result(PGresult* r) {
        const ExecStatusType st = PQresultStatus(r);
        if (units_.empty()) {
            drop("a result arrived for no statement");
            return;
        }
        unit& u = units_.front();
        if (st == PGRES_PIPELINE_SYNC) {
            finish_unit();
            return;
        }
        u.got = true;
        if (u.done >= u.slots.size()) {
            // An error after the last statement: the implicit transaction did not commit.
            u.failed = true;
            if (!u.first_error) u.first_error = refused(r);
            return;
        }
        const unit::slot s = u.slots[u.done];
        if (s.r == unit::role::prepare) {
            if (st == PGRES_COMMAND_OK) {
                prepared_[s.index] = prep::yes;
                return;
            }
            prepared_[s.index] = prep::no;
            u.failed = true;
            if (st == PGRES_PIPELINE_ABORTED) return;
            rows e = refused(r);
            if (u.t == unit::type::prepare)
                log_warn("pg_prepare_failed", statements_[s.index].name + ": " + e.sqlstate + " " + e.message);
            if (!u.first_error) u.first_error = std::move(e);
            return;
        }
        if (st == PGRES_PIPELINE_ABORTED) {
            u.failed = true;
            return;  // answers[i] stays empty: the first refusal answers for it
        }
        rows a = to_rows(r);
        if (!a.ok()) {
            u.failed = true;
            if (!u.first_error) u.first_error = a;
        }
        u.answers[s.index] = std::move(a);
    }

    void arm_write() {
        if (write_armed_ || !conn_) return;
        write_armed_ = true;
        sock_.async_wait(asio::posix::stream_descriptor::wait_write,
                         [self = shared_from_this(), g = gen_](boost::system::error_code ec) {
                             if (g != self->gen_ || self->stopped_) return;
                             self->write_armed_ = false;
                             if (ec) {
                                 self->drop(ec.message());
                                 return;
                             }
                             self->pump();
                         });
    }

    // Flushes what libpq holds for the server and dispatches every complete result it holds.
    // Re-entrant calls (a dispatch that sends) only ask the running pass to go round again.
    void pump() {
        if (pumping_) {
            pump_again_ = true;
            return;
        }
        pumping_ = true;
        do {
            pump_again_ = false;
            if (!conn_) break;
            const int f = PQflush(conn_.get());
            if (f < 0) {
                drop(conn_error(conn_.get()));
                break;
            }
            if (f == 1) arm_write();
            int nulls = 0;  // consecutive NULLs with no result pending: libpq has nothing more
            while (conn_ && !PQisBusy(conn_.get())) {
                PGresult* raw = PQgetResult(conn_.get());
                if (!raw) {
                    if (!units_.empty() && units_.front().got) {
                        units_.front().got = false;
                        ++units_.front().done;
                        nulls = 0;
                        continue;
                    }
                    if (++nulls >= 2) break;
                    continue;
                }
                nulls = 0;
                result_ptr r(raw);
                on_result(r.get());
            }
            if (!conn_) break;
            while (PGnotify* n = PQnotifies(conn_.get())) PQfreemem(n);
            if (PQstatus(conn_.get()) == CONNECTION_BAD) {
                drop(conn_error(conn_.get()));
                break;
            }
        } while (pump_again_);
        pumping_ = false;
    }

    // --- connecting -------------------------------------------------------------------------
    struct conn_params {
        std::vector<std::string> keys, values;
        std::string* find(std::string_view k) {
            for (std::size_t i = 0; i < keys.size(); ++i)
                if (keys[i] == k) return &values[i];
            return nullptr;
        }
    };

    static result<conn_params> parse_conninfo(const std::string& conninfo) {
        char* err = nullptr;
        PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
        if (!opts) {
            std::string e = err ? first_line(err) : "cannot parse the connection string";
            if (err) PQfreemem(err);
            return fail(errc::internal, "invalid PostgreSQL connection string: " + e);
        }
        conn_params p;
        for (PQconninfoOption* o = opts; o->keyword; ++o) {
            if (!o->val || !*o->val) continue;
            p.keys.emplace_back(o->keyword);
            p.values.emplace_back(o->val);
        }
        PQconninfoFree(opts);
        return p;
    }

    static std::vector<std::string> split(const std::string& s) {
        std::vector<std::string> out;
        std::size_t from = 0;
        for (;;) {
            const auto comma = s.find(',', from);
            out.push_back(s.substr(from, comma == std::string::npos ? std::string::npos : comma - from));
            if (comma == std::string::npos) return out;
            from = comma + 1;
        }
    }

    // Races an operation against the connect timer; false when the timer (or stop()) won.
    template <class T>
    asio::awaitable<std::optional<T>> bounded(asio::awaitable<T> step) {
        auto timer = connect_timer_.async_wait(nothrow);
        auto either = co_await (std::move(step) || std::move(timer));
        if (either.index() != 0 || stopped_) co_return std::nullopt;
        co_return std::get<0>(std::move(either));
    }

    // Host names become addresses (hostaddr) with Asio's resolver: libpq's own lookup blocks.
    // A name with several addresses becomes as many hosts, tried in order as libpq would.
    static asio::awaitable<result<std::monostate>> resolve_hosts(std::shared_ptr<impl> self, conn_params& p) {
        std::string* host = p.find("host");
        if (!host || p.find("hostaddr")) co_return std::monostate{};
        const std::vector<std::string> hosts = split(*host);
        std::vector<std::string> ports;
        if (std::string* port = p.find("port")) ports = split(*port);
        std::vector<std::string> out_hosts, out_addrs, out_ports;
        bool any = false;
        for (std::size_t i = 0; i < hosts.size(); ++i) {
            const std::string& h = hosts[i];
            const std::string port = ports.size() == hosts.size() ? ports[i] : std::string();
            boost::system::error_code ec;
            const bool path = h.empty() || h.front() == '/' || h.front() == '@';
            if (path || (asio::ip::make_address(h, ec), !ec)) {
                out_hosts.push_back(h);
                out_addrs.push_back(path ? std::string() : h);
                out_ports.push_back(port);
                continue;
            }
            asio::ip::tcp::resolver resolver(self->ex_);
            auto looked_up = co_await self->bounded(resolver.async_resolve(h, "", nothrow));
            if (!looked_up) co_return fail(errc::upstream_unavailable, "resolving " + h + " timed out");
            auto& [rec, results] = *looked_up;
            if (rec || results.empty())
                co_return fail(errc::upstream_unavailable, "cannot resolve " + h + ": " + rec.message());
            for (const auto& e : results) {
                const std::string a = e.endpoint().address().to_string();
                if (std::find(out_addrs.begin(), out_addrs.end(), a) != out_addrs.end()) continue;
                out_hosts.push_back(h);
                out_addrs.push_back(a);
                out_ports.push_back(port);
            }
            any = true;
        }
        if (!any) co_return std::monostate{};
        const auto join = [](const std::vector<std::string>& v) {
            std::string s;
            for (std::size_t i = 0; i < v.size(); ++i) {
                if (i) s += ',';
                s += v[i];
            }
            return s;
        };
        *host = join(out_hosts);
        p.keys.emplace_back("hostaddr");
        p.values.push_back(join(out_addrs));
        if (ports.size() == hosts.size() && ports.size() > 1) *p.find("port") = join(out_ports);
        co_return std::monostate{};
    }

    // One attempt: resolve, PQconnectStartParams/PQconnectPoll on readiness, pipeline mode,
    // prepares sent. True when the connection is up (the prepares' answer is still to come).
    static asio::awaitable<bool> connect_once(std::shared_ptr<impl> self) {
        auto parsed = parse_conninfo(self->cfg_.conninfo);
        if (!parsed) {
            self->note_down(parsed.error().detail);
            co_return false;
        }
        conn_params p = std::move(parsed.value());
        if (!self->cfg_.options.empty()) {
            if (std::string* o = p.find("options")) *o = self->cfg_.options + " " + *o;
            else {
                p.keys.emplace_back("options");
                p.values.push_back(self->cfg_.options);
            }
        }
        {
            const std::string* h = p.find("host");
            const std::string* port = p.find("port");
            const std::string* db = p.find("dbname");
            self->target_ = (h ? *h : std::string("(default)")) + ":" + (port ? *port : std::string("5432")) + "/" +
                            (db ? *db : std::string());
        }
        self->connect_timer_.expires_after(self->cfg_.connect_timeout);
        auto resolved = co_await resolve_hosts(self, p);
        if (self->stopped_) co_return false;
        if (!resolved) {
            self->note_down(resolved.error().detail);
            co_return false;
        }
        std::vector<const char*> keys, values;
        for (std::size_t i = 0; i < p.keys.size(); ++i) {
            keys.push_back(p.keys[i].c_str());
            values.push_back(p.values[i].c_str());
        }
        keys.push_back(nullptr);
        values.push_back(nullptr);
        conn_ptr c(PQconnectStartParams(keys.data(), values.data(), 0));
        if (!c || PQstatus(c.get()) == CONNECTION_BAD) {
            self->note_down(conn_error(c.get()));
            co_return false;
        }
        PQsetNoticeProcessor(c.get(), [](void*, const char*) {}, nullptr);  // library code never prints
        PostgresPollingStatusType st = PGRES_POLLING_WRITING;
        while (st != PGRES_POLLING_OK) {
            const int fd = st == PGRES_POLLING_FAILED ? -1 : PQsocket(c.get());
            if (fd < 0) {
                self->note_down(conn_error(c.get()));
                co_return false;
            }
            // A fresh dup each step: libpq may have moved to another socket (another host, no SSL).
            asio::posix::stream_descriptor d(self->ex_);
            const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
            boost::system::error_code ec;
            if (copy < 0 || (d.assign(copy, ec), ec)) {
                if (copy >= 0 && ec) ::close(copy);
                self->note_down("cannot watch the PostgreSQL socket");
                co_return false;
            }
            const auto w = st == PGRES_POLLING_READING ? asio::posix::stream_descriptor::wait_read
                                                       : asio::posix::stream_descriptor::wait_write;
            auto ready = co_await self->bounded(d.async_wait(w, nothrow));
            if (self->stopped_) co_return false;
            if (!ready) {
                self->note_down("connecting timed out after " + std::to_string(self->cfg_.connect_timeout.count()) + " ms");
                co_return false;
            }
            st = PQconnectPoll(c.get());
        }
        if (PQsetnonblocking(c.get(), 1) != 0 || PQenterPipelineMode(c.get()) != 1) {
            self->note_down(conn_error(c.get()));
            co_return false;
        }
        const int copy = ::fcntl(PQsocket(c.get()), F_DUPFD_CLOEXEC, 0);
        boost::system::error_code ec;
        if (copy < 0 || (self->sock_.assign(copy, ec), ec)) {
            if (copy >= 0 && ec) ::close(copy);
            self->note_down("cannot watch the PostgreSQL socket");
            co_return false;
        }
        self->conn_ = std::move(c);
        ++self->gen_;
        std::fill(self->prepared_.begin(), self->prepared_.end(), prep::no);
        // The preparation must be answered within the same connect_timeout (a hung server).
        self->connect_timer_.async_wait([self, g = self->gen_](boost::system::error_code wait_ec) {
            if (!wait_ec && g == self->gen_ && !self->connected_ && !self->stopped_)
                self->drop("no answer from PostgreSQL within " + std::to_string(self->cfg_.connect_timeout.count()) + " ms");
        });
        self->send_prepares();
        co_return self->conn_ != nullptr;
    }

    // Reads until the connection is dropped (by a loss, a send failure or stop()).
    static asio::awaitable<void> read_loop(std::shared_ptr<impl> self) {
        const std::uint64_t g = self->gen_;
        while (!self->stopped_ && self->conn_ && self->gen_ == g) {
            auto [ec] = co_await self->sock_.async_wait(asio::posix::stream_descriptor::wait_read, nothrow);
            if (self->stopped_ || self->gen_ != g || !self->conn_) break;
            if (ec) {
                self->drop(ec.message());
                break;
            }
            if (!PQconsumeInput(self->conn_.get())) {
                self->drop(conn_error(self->conn_.get()));
                break;
            }
            self->pump();
        }
    }

    static asio::awaitable<void> run(std::shared_ptr<impl> self) {
        auto backoff = self->cfg_.reconnect_min;
        while (!self->stopped_) {
            bool up = false;
            try {
                up = co_await connect_once(self);
            } catch (const std::exception& e) {
                self->note_down(e.what());
            }
            if (up) {
                const std::uint64_t ready_before = self->sessions_ready_;
                co_await read_loop(self);
                if (self->sessions_ready_ != ready_before) backoff = self->cfg_.reconnect_min;
            }
            if (self->stopped_) break;
            self->retry_timer_.expires_after(backoff);
            auto [ec] = co_await self->retry_timer_.async_wait(nothrow);
            (void)ec;
            backoff = std::min(backoff * 2, std::max(self->cfg_.reconnect_max, self->cfg_.reconnect_min));
        }
    }

    // --- the public operations ----------------------------------------------------------------
    static asio::awaitable<result<rows>> exec(std::shared_ptr<impl> self, std::string name,
                                              std::vector<std::optional<std::string>> params, kind k,
                                              deadline until) {
        if (!self->connected_ || self->stopped_) co_return fail(errc::upstream_unavailable, "not connected to PostgreSQL");
        if (until.expired()) co_return fail(errc::deadline_exceeded, "no time left for the PostgreSQL statement");
        auto o = std::make_shared<op>(self->ex_, std::move(name), std::move(params));
        o->timer.expires_at(until.at());
        if (k == kind::read) {
            self->send_read(o);
        } else if (k == kind::alone) {
            self->send_alone(o);
        } else {
            self->writes_.push_back(o);
            self->send_group();
        }
        if (!o->outcome) {
            auto [ec] = co_await o->timer.async_wait(nothrow);
            (void)ec;
        }
        if (o->outcome) co_return std::move(*o->outcome);
        o->abandoned = true;
        co_return fail(errc::deadline_exceeded, "PostgreSQL did not answer before the deadline");
    }

    static asio::awaitable<bool> wait_connected(std::shared_ptr<impl> self, deadline until) {
        while (!self->connected_ && !self->stopped_ && !until.expired()) {
            auto t = std::make_shared<asio::steady_timer>(self->ex_);
            t->expires_at(until.at());
            self->waiters_.push_back(t);
            auto [ec] = co_await t->async_wait(nothrow);
            (void)ec;
            std::erase(self->waiters_, t);
        }
        co_return self->connected_;
    }

    void stop() {
        if (stopped_) return;
        stopped_ = true;
        connect_timer_.cancel();
        retry_timer_.cancel();
        drop("the connection was stopped");
        wake_waiters();
    }
};

connection::connection(asio::any_io_executor ex, connection_config cfg, std::vector<statement> statements, logger* log)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(cfg), std::move(statements), log)) {}

connection::~connection() { stop(); }

void connection::start() {
    if (impl_->started_ || impl_->stopped_) return;
    impl_->started_ = true;
    asio::co_spawn(impl_->ex_, impl::run(impl_), asio::detached);
}

void connection::stop() { impl_->stop(); }

asio::awaitable<result<rows>> connection::exec(std::string_view name, std::vector<std::optional<std::string>> params,
                                               kind k, deadline until) {
    return impl::exec(impl_, std::string(name), std::move(params), k, until);
}

asio::awaitable<bool> connection::wait_connected(deadline until) { return impl::wait_connected(impl_, until); }

bool connection::connected() const noexcept { return impl_->connected_; }

const connection_stats& connection::stats() const noexcept { return impl_->stats_; }

std::string run_once_blocking(const std::string& url, const std::string& sql, logger* log, std::chrono::milliseconds timeout) {
    asio::io_context io(1);
    connection c(io.get_executor(), connection_config{url}, {{"once", sql}}, log);
    c.start();
    // The connection keeps the io_context busy: it is stopped as soon as the statement is done
    // (run_for alone waited out the whole timeout: every replica took 11 s to start).
    std::optional<std::string> outcome;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<std::string> {
            const deadline until = deadline::after(timeout);
            if (!co_await c.wait_connected(until))
                co_return "cannot connect to PostgreSQL within " + std::to_string(timeout.count()) + " ms";
            std::vector<std::optional<std::string>> none;
            auto r = co_await c.exec("once", std::move(none), kind::read, until);
            if (!r) co_return r.error().detail;
            if (!r->ok()) co_return "cannot create the schema (SQLSTATE " + r->sqlstate + "): " + r->message;
            co_return std::string();
        },
        [&](std::exception_ptr e, std::string err) {
            outcome = e ? std::string("internal error while migrating") : std::move(err);
            io.stop();
        });
    io.run_for(timeout + std::chrono::seconds(1));
    std::string err = outcome ? std::move(*outcome) : std::string("timed out");
    c.stop();
    io.restart();
    io.poll();
    return err;
}

}  // namespace offerd::pg
