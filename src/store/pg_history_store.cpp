#include "offerd/store/pg_history_store.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <optional>
#include <stdexcept>

#include "offerd/obs/log.hpp"

namespace offerd {

namespace {

// Versioned and idempotent, like the orchestrator's state schema, but with its own version table
// and lock: member-data and the orchestrator may share a database and upgrade apart.
constexpr const char* migrate_sql = R"sql(
DO $$
BEGIN
  PERFORM pg_advisory_xact_lock(72430014);
  CREATE TABLE IF NOT EXISTS offerd_member_data_schema (version integer NOT NULL);
  IF NOT EXISTS (SELECT 1 FROM offerd_member_data_schema) THEN INSERT INTO offerd_member_data_schema VALUES (0); END IF;
  IF (SELECT version FROM offerd_member_data_schema) < 1 THEN
    CREATE TABLE member_data_history (
      member_id text NOT NULL,
      seq bigserial,
      idem_key text,          -- the writer's Idempotency-Key, if any
      txn text NOT NULL,      -- the normalized transaction: a repeat under the key vs. a conflict
      body text NOT NULL,     -- the object as sent, served by GET /member_data/{id}
      PRIMARY KEY (member_id, seq)
    );
    CREATE UNIQUE INDEX member_data_history_key ON member_data_history (idem_key) WHERE idem_key IS NOT NULL;
    UPDATE offerd_member_data_schema SET version = 1;
  END IF;
  IF (SELECT version FROM offerd_member_data_schema) > 1 THEN
    RAISE EXCEPTION 'the member-data schema is version %, newer than this offerd (1)', (SELECT version FROM offerd_member_data_schema);
  END IF;
END $$)sql";

std::vector<pg::statement> statements() {
    return {
        {"append", "INSERT INTO member_data_history (member_id, idem_key, txn, body) VALUES ($1, $2, $3, $4) "
                   "ON CONFLICT (idem_key) WHERE idem_key IS NOT NULL DO NOTHING"},
        {"find_key", "SELECT txn, body FROM member_data_history WHERE idem_key = $1"},
        {"history", "SELECT body FROM member_data_history WHERE member_id = $1 ORDER BY seq"},
        {"counts", "SELECT count(DISTINCT member_id), count(*) FROM member_data_history"},
    };
}

// Built before the co_await: g++ 12 cannot keep an initializer list's array across a suspension.
using params = std::vector<std::optional<std::string>>;

failure store_failure(const pg::rows& r) {
    return fail(errc::internal, "member-data's PostgreSQL refused a statement (SQLSTATE " + r.sqlstate + ": " + r.message + ")");
}

std::size_t to_size(const std::optional<std::string>& s) {
    std::size_t v = 0;
    if (s) std::from_chars(s->data(), s->data() + s->size(), v);
    return v;
}

// A store call bounds itself: member-data's handlers have no request budget of their own.
deadline call_deadline() { return deadline::after(std::chrono::seconds(5)); }

// Just started, or reconnecting after a loss: a call waits briefly for the connection rather
// than failing at once (while PostgreSQL is down it fails after this second: 503).
asio::awaitable<bool> ready(pg::connection& c) {
    if (c.connected()) co_return true;
    co_return co_await c.wait_connected(deadline::after(std::chrono::seconds(1)));
}

}  // namespace

struct pg_history_store::counts_state {
    explicit counts_state(asio::io_context& ctx) : timer(ctx) {}
    asio::steady_timer timer;  // touched on the first worker only
    std::atomic<bool> stopped{false};
    std::atomic<std::size_t> members{0}, transactions{0};
};

pg_history_store::pg_history_store(std::span<asio::io_context* const> workers, const std::string& url, logger& log,
                                   std::chrono::milliseconds timeout) {
    if (workers.empty()) throw std::runtime_error("--member-data-store: no worker threads");
    // Before any worker runs: the schema, on a connection of its own.
    if (std::string err = pg::run_once_blocking(url, migrate_sql, &log, timeout); !err.empty())
        throw std::runtime_error("--member-data-store: " + err);
    for (asio::io_context* w : workers) {
        executors_.push_back(w->get_executor());
        conns_.push_back(std::make_unique<pg::connection>(w->get_executor(), pg::connection_config{url}, statements(), &log));
        conns_.back()->start();
    }
    counts_ = std::make_shared<counts_state>(*workers.front());
    auto loop = [](std::shared_ptr<counts_state> st, pg::connection* conn) -> asio::awaitable<void> {
        while (!st->stopped.load(std::memory_order_relaxed)) {
            params none;
            auto r = co_await conn->exec("counts", std::move(none), pg::kind::read, call_deadline());
            if (st->stopped.load(std::memory_order_relaxed)) co_return;
            if (r && r->ok() && r->size() == 1) {
                st->members.store(to_size(r->at(0, 0)), std::memory_order_relaxed);
                st->transactions.store(to_size(r->at(0, 1)), std::memory_order_relaxed);
            }
            st->timer.expires_after(std::chrono::seconds(10));
            co_await st->timer.async_wait(asio::as_tuple(asio::use_awaitable));
        }
    };
    asio::co_spawn(*workers.front(), loop(counts_, conns_.front().get()), asio::detached);
}

// By then the workers no longer run: the connections are stopped here, on this thread.
pg_history_store::~pg_history_store() {
    counts_->stopped.store(true, std::memory_order_relaxed);
    for (auto& c : conns_) c->stop();
}

void pg_history_store::stop() {
    counts_->stopped.store(true, std::memory_order_relaxed);
    asio::post(executors_.front(), [st = counts_] { st->timer.cancel(); });
    for (std::size_t i = 0; i < conns_.size(); ++i) asio::post(executors_[i], [c = conns_[i].get()] { c->stop(); });
}

std::size_t pg_history_store::members() const { return counts_->members.load(std::memory_order_relaxed); }
std::size_t pg_history_store::transactions() const { return counts_->transactions.load(std::memory_order_relaxed); }

pg::connection* pg_history_store::connection_here(const asio::any_io_executor& ex) const {
    for (std::size_t i = 0; i < executors_.size(); ++i)
        if (executors_[i] == ex) return conns_[i].get();
    return nullptr;
}

asio::awaitable<result<append_outcome>> pg_history_store::append(transaction t, std::string key, transaction_text as_sent) {
    pg::connection* conn = connection_here(co_await asio::this_coro::executor);
    if (!conn) co_return fail(errc::internal, "member-data store called off its worker threads");
    if (!co_await ready(*conn)) co_return fail(errc::internal, "member-data's PostgreSQL is not reachable");
    std::string body;
    append_transaction(body, t, &as_sent);
    std::string txn = encode_transaction(t);
    params p{t.member_id, key.empty() ? std::nullopt : std::optional<std::string>(key), txn, body};
    auto r = co_await conn->exec("append", std::move(p), pg::kind::write, call_deadline());
    if (!r) co_return fail(errc::internal, "member-data's PostgreSQL: " + r.error().detail);
    if (!r->ok()) co_return store_failure(*r);
    if (r->affected == 1) co_return append_outcome{append_outcome::kind::stored, std::move(body)};
    // The key was taken (committed: the unique index waited for its transaction): a repeat of
    // the same transaction, or another one under that key.
    params k{key};
    auto prior = co_await conn->exec("find_key", std::move(k), pg::kind::read, call_deadline());
    if (!prior) co_return fail(errc::internal, "member-data's PostgreSQL: " + prior.error().detail);
    if (!prior->ok()) co_return store_failure(*prior);
    if (prior->size() != 1) co_return fail(errc::internal, "member-data's PostgreSQL: a key refused as taken is not found");
    if (prior->at(0, 0) != txn) co_return append_outcome{append_outcome::kind::conflict, {}};
    co_return append_outcome{append_outcome::kind::duplicate, prior->at(0, 1).value_or("")};
}

asio::awaitable<result<bool>> pg_history_store::history_json(std::string member, std::string& out) const {
    pg::connection* conn = connection_here(co_await asio::this_coro::executor);
    if (!conn) co_return fail(errc::internal, "member-data store called off its worker threads");
    if (!co_await ready(*conn)) co_return fail(errc::internal, "member-data's PostgreSQL is not reachable");
    params p{member};
    auto r = co_await conn->exec("history", std::move(p), pg::kind::read, call_deadline());
    if (!r) co_return fail(errc::internal, "member-data's PostgreSQL: " + r.error().detail);
    if (!r->ok()) co_return store_failure(*r);
    if (r->size() == 0) co_return false;
    out += '[';
    for (std::size_t i = 0; i < r->size(); ++i) {
        if (i) out += ',';
        out += r->at(i, 0).value_or("null");
    }
    out += ']';
    co_return true;
}

std::vector<transaction> pg_history_store::history(std::string_view) const { return {}; }

}  // namespace offerd
