// The member log's SQL. Every statement is one round trip; the appends waiting on a worker go
// as one multi-row statement (one commit), reads go alone.
#include "offerd/orchestrator/persist/pg_member_log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <algorithm>
#include <optional>
#include <charconv>
#include <unordered_map>
#include <stdexcept>
#include <unordered_set>

#include "offerd/codec/wire.hpp"
#include "offerd/obs/log.hpp"
#include "offerd/obs/prometheus.hpp"

namespace offerd {

namespace {

// Versioned and idempotent: the advisory lock makes replicas that start together migrate one
// after the other (CREATE ... IF NOT EXISTS alone races on the catalog).
constexpr const char* migrate_sql = R"sql(
DO $$
BEGIN
  PERFORM pg_advisory_xact_lock(72430013);
  CREATE TABLE IF NOT EXISTS offerd_schema (version integer NOT NULL);
  IF NOT EXISTS (SELECT 1 FROM offerd_schema) THEN INSERT INTO offerd_schema VALUES (0); END IF;
  IF (SELECT version FROM offerd_schema) < 1 THEN
    CREATE TABLE members (
      member_id text PRIMARY KEY,
      last_seq bigint NOT NULL,                -- seq of the last accepted transaction
      delivered_seq bigint NOT NULL DEFAULT 0  -- member-data holds every transaction up to it
    );
    CREATE INDEX members_undelivered ON members (member_id) WHERE delivered_seq < last_seq;
    CREATE TABLE member_log (
      member_id text NOT NULL,
      seq bigint NOT NULL,
      idem_key text,                 -- the client's Idempotency-Key, if any
      body_hash text NOT NULL,       -- of the request body: a repeat vs. a conflict
      txn text NOT NULL,             -- the normalized transaction (JSON)
      answer text NOT NULL,          -- the 200 body a repeat of the key replays
      accepted_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (member_id, seq)
    );
    CREATE UNIQUE INDEX member_log_key ON member_log (member_id, idem_key) WHERE idem_key IS NOT NULL;
    UPDATE offerd_schema SET version = 1;
  END IF;
  IF (SELECT version FROM offerd_schema) > 1 THEN
    RAISE EXCEPTION 'the schema is version %, newer than this offerd (1)', (SELECT version FROM offerd_schema);
  END IF;
END $$)sql";

// The fence: advances last_seq only from the value the decision saw (a new member only from 0:
// a decision over history the log lacks is stale too), and logs the transaction in the same
// statement, so both happen or neither.
constexpr const char* append_sql = R"sql(
WITH adv AS (
  INSERT INTO members AS m (member_id, last_seq)
  SELECT $1, $2::bigint + 1 WHERE $2::bigint = 0 OR EXISTS (SELECT 1 FROM members WHERE member_id = $1)
  ON CONFLICT (member_id) DO UPDATE SET last_seq = excluded.last_seq WHERE m.last_seq = excluded.last_seq - 1
  RETURNING last_seq)
INSERT INTO member_log (member_id, seq, idem_key, body_hash, txn, answer)
SELECT $1, last_seq, $3, $4, $5, $6 FROM adv
RETURNING seq)sql";

// The batched marks lock only the members rows nobody else holds (SKIP LOCKED) and return the
// ones they marked: a mark waiting behind an append's group commit while that group waited
// behind the mark was a deadlock PostgreSQL broke only after deadlock_timeout (1 s, every
// request in flight stalled). Sent alone, so its locks last one commit.
constexpr const char* delivered_many_sql = R"sql(
UPDATE members m SET delivered_seq = GREATEST(m.delivered_seq, v.seq)
FROM (SELECT l.member_id, u.seq FROM unnest($1::text[], $2::bigint[]) AS u(member_id, seq)
      JOIN members l ON l.member_id = u.member_id FOR UPDATE OF l SKIP LOCKED) AS v
WHERE m.member_id = v.member_id
RETURNING m.member_id)sql";

// The same fence for every append waiting on a worker, in one statement: one Bind/Execute and
// one plan for N rows instead of N (with pgbench on this 2-core machine, 8-row statements
// reached 46k appends/s against 26k as 8 pipelined single-row ones; in the whole pipeline the
// gain is within the benchmark's noise, the commit count is the same). An existing member advances only from the
// expected seq (excluded.last_seq is expected + 1); a new one only from 0 (a replica that
// believes in history the log lacks is stale too). A key already in the log leaves its row out
// (key_taken). Rows are sorted by member by the caller, so two replicas' batches lock members
// rows in one order. Any error (a key logged concurrently, a deadlock) fails the statement
// whole and the caller appends those rows one by one.
constexpr const char* append_many_sql = R"sql(
WITH v AS (
  SELECT u.*, u.idem_key IS NOT NULL AND EXISTS (
           SELECT 1 FROM member_log l WHERE l.member_id = u.member_id AND l.idem_key = u.idem_key OFFSET 0) AS taken
  FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])
    AS u(member_id, expected, idem_key, body_hash, txn, answer)),
fresh AS (
  SELECT * FROM v
  WHERE NOT v.taken AND (v.expected = 0 OR EXISTS (SELECT 1 FROM members m WHERE m.member_id = v.member_id OFFSET 0))),
adv AS (
  INSERT INTO members AS m (member_id, last_seq) SELECT member_id, expected + 1 FROM fresh
  ON CONFLICT (member_id) DO UPDATE SET last_seq = excluded.last_seq WHERE m.last_seq = excluded.last_seq - 1
  RETURNING m.member_id, m.last_seq),
ins AS (
  INSERT INTO member_log (member_id, seq, idem_key, body_hash, txn, answer)
  SELECT f.member_id, a.last_seq, f.idem_key, f.body_hash, f.txn, f.answer FROM adv a JOIN fresh f USING (member_id)
  RETURNING member_id, seq)
SELECT v.member_id, ins.seq, v.taken FROM v LEFT JOIN ins USING (member_id))sql";

constexpr const char* head_sql = R"sql(
SELECT m.last_seq, m.delivered_seq, l.seq, l.txn FROM members m
LEFT JOIN member_log l ON l.member_id = m.member_id AND l.seq > m.delivered_seq
WHERE m.member_id = $1 ORDER BY l.seq)sql";

// Every statement here reaches members and member_log by key, and must keep doing so at 100M
// members. Prepared statements run on a generic plan made once per session, and a session
// opened on a fresh server plans against empty tables, where a scan looks cheaper than index
// probes: measured on main, each multi-row append scanned and hashed all of members for its
// EXISTS ("hashed SubPlan"; 1,656 scans reading 5.1M rows in an 8 s run at 64 connections),
// each delivery mark scanned members twice (hash joins) and each claim scan read all of
// member_log. So the sessions plan with sequential scans disabled, and the EXISTS and LATERAL
// subqueries carry OFFSET 0, which keeps them per-row probes (PostgreSQL neither hashes nor
// flattens them then). The prune, the one statement that must visit the whole log, then runs
// as a merge of the two primary keys, once a minute.
constexpr const char* plan_guard = "-c enable_seqscan=off";

std::vector<pg::statement> statements() {
    return {
        {"append", append_sql},
        {"append_many", append_many_sql},
        {"head", head_sql},
        {"find_key", "SELECT body_hash, answer FROM member_log WHERE member_id = $1 AND idem_key = $2"},
        {"rows", "SELECT seq, txn FROM member_log WHERE member_id = $1 AND seq > $2::bigint AND seq <= $3::bigint ORDER BY seq"},
        {"delivered", "UPDATE members SET delivered_seq = GREATEST(delivered_seq, $2::bigint) WHERE member_id = $1"},
        {"delivered_many", delivered_many_sql},
        {"refused", "WITH gone AS (DELETE FROM member_log WHERE member_id = $1 AND seq = $2::bigint) "
                    "UPDATE members SET delivered_seq = GREATEST(delivered_seq, $2::bigint) WHERE member_id = $1"},
        {"undelivered", "SELECT m.member_id FROM members m CROSS JOIN LATERAL (SELECT 1 FROM member_log l "
                        "WHERE l.member_id = m.member_id AND l.seq = m.delivered_seq + 1 "
                        "AND l.accepted_at < now() - $2::bigint * interval '1 millisecond' OFFSET 0) AS first_undelivered "
                        "WHERE m.delivered_seq < m.last_seq LIMIT $1::bigint"},
        {"prune", "DELETE FROM member_log l USING members m WHERE l.member_id = m.member_id AND l.seq <= m.delivered_seq "
                  "AND l.accepted_at < now() - $1::bigint * interval '1 millisecond'"},
    };
}

// Built before the co_await: g++ 12 cannot keep an initializer list's array across a suspension.
using params = std::vector<std::optional<std::string>>;

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// A PostgreSQL array literal: text elements double-quoted with '"' and '\\' escaped, NULLs bare.
// (libpq has no array encoder; the unnest() statements take their rows this way.)
class pg_array {
public:
    void text(std::string_view v) {
        separate();
        out_ += '"';
        for (char ch : v) {
            if (ch == '"' || ch == '\\') out_ += '\\';
            out_ += ch;
        }
        out_ += '"';
    }
    void text(const std::optional<std::string>& v) {
        if (v) {
            text(std::string_view(*v));
        } else {
            separate();
            out_ += "NULL";
        }
    }
    void number(std::uint64_t v) {
        separate();
        out_ += std::to_string(v);
    }
    std::string done() && {
        out_ += '}';
        return std::move(out_);
    }

private:
    void separate() {
        if (out_.size() > 1) out_ += ',';
    }
    std::string out_ = "{";
};

std::uint64_t to_u64(const std::optional<std::string>& s) {
    std::uint64_t v = 0;
    if (s) std::from_chars(s->data(), s->data() + s->size(), v);
    return v;
}

failure store_failure(const pg::rows& r) {
    return fail(errc::upstream_bad_response, "the state store refused a statement (SQLSTATE " + r.sqlstate + ": " + r.message + ")");
}

result<logged_transaction> logged(const std::optional<std::string>& seq, const std::optional<std::string>& txn) {
    auto t = decode_transaction(txn.value_or(""));
    if (!t) return fail(errc::internal, "the state store holds an unreadable transaction: " + t.error().detail);
    return logged_transaction{to_u64(seq), std::move(*t)};
}

}  // namespace

pg_member_log::pg_member_log(worker_set workers, const std::string& url, logger& log,
                             std::chrono::milliseconds timeout)
    : log_(log) {
    // Before any worker runs: the schema, on a connection of its own.
    if (std::string err = pg::run_once_blocking(url, migrate_sql, &log_, timeout); !err.empty())
        throw std::runtime_error("--state-url: " + err);
    for (const worker_context& w : workers) {
        executors_.push_back(w.executor);
        pg::connection_config cfg{url};
        cfg.options = plan_guard;
        conns_.push_back(std::make_unique<pg::connection>(w.executor, std::move(cfg), statements(), &log_));
        conns_.back()->start();
        queues_.push_back(std::make_unique<append_queue>());
    }
}

// By then the workers no longer run: the connections are stopped here, on this thread.
pg_member_log::~pg_member_log() {
    for (auto& c : conns_) c->stop();
}

void pg_member_log::stop() {
    for (std::size_t i = 0; i < conns_.size(); ++i) asio::post(executors_[i], [c = conns_[i].get()] { c->stop(); });
}

asio::awaitable<result<pg::rows>> pg_member_log::exec_on(std::size_t worker, deadline until, const char* stmt,
                                                         params args, pg::kind k) {
    auto r = co_await conns_[worker]->exec(stmt, std::move(args), k, until);
    if (!r) {
        failure f = std::move(r).error();
        if (f.code == errc::upstream_unavailable) {
            f.code = errc::state_unavailable;
            f.detail = "the state store (PostgreSQL) is unavailable: " + f.detail;
            f.retry_after_s = 1;
        }
        co_return f;
    }
    co_return r;
}

asio::awaitable<result<member_head>> pg_member_log::head(const std::string& member, const call_context& ctx) {
    params args{member};
    auto r = co_await exec(ctx, "head", std::move(args), pg::kind::read);
    if (!r) co_return std::move(r).error();
    if (!r->ok()) co_return store_failure(*r);
    member_head h;
    for (std::size_t i = 0; i < r->size(); ++i) {
        h.last_seq = to_u64(r->at(i, 0));
        h.delivered_seq = to_u64(r->at(i, 1));
        if (!r->at(i, 2)) continue;  // nothing undelivered: the LEFT JOIN's one row
        auto row = logged(r->at(i, 2), r->at(i, 3));
        if (!row) co_return std::move(row).error();
        h.undelivered.push_back(std::move(*row));
    }
    co_return h;
}

struct pg_member_log::pending_append {
    pending_append(const asio::any_io_executor& ex, params a, deadline d) : timer(ex), args(std::move(a)), until(d) {
        timer.expires_at(until.at());
    }
    const std::string& member() const { return *args[0]; }
    void complete(result<append_result> r) {
        outcome.emplace(std::move(r));
        timer.cancel();
    }
    asio::steady_timer timer;  // expires at the caller's deadline; cancelled when the answer is in
    params args;               // the single append's: member, expected, key, body hash, txn, answer
    deadline until;
    std::optional<result<append_result>> outcome;
    bool abandoned = false;  // the caller stopped waiting: left out of a statement not yet sent
};

asio::awaitable<result<append_result>> pg_member_log::append(const std::string& member, const append_request& a,
                                                             const call_context& ctx) {
    std::optional<std::string> key;
    if (!a.idempotency_key.empty()) key = std::string(a.idempotency_key);
    params args{member, std::to_string(a.expected_seq), std::move(key), std::to_string(a.body_hash),
                encode_transaction(*a.txn), std::string(a.answer)};
    const std::size_t w = worker_of(ctx);
    if (!conns_[w]->connected()) co_return co_await append_alone(w, ctx.until, std::move(args), pg::kind::write);  // fails fast
    auto p = std::make_shared<pending_append>(executors_[w], std::move(args), ctx.until);
    append_queue& q = *queues_[w];
    q.waiting.push_back(p);
    if (!q.flushing) {
        q.flushing = true;
        asio::co_spawn(executors_[w], flush_appends(this, w), asio::detached);
    }
    if (!p->outcome) {
        auto [ec] = co_await p->timer.async_wait(nothrow);
        (void)ec;
    }
    if (p->outcome) co_return std::move(*p->outcome);
    p->abandoned = true;
    co_return fail(errc::deadline_exceeded, "PostgreSQL did not answer before the deadline");
}

asio::awaitable<result<append_result>> pg_member_log::append_alone(std::size_t worker, deadline until, params args,
                                                                   pg::kind k) {
    auto r = co_await exec_on(worker, until, "append", std::move(args), k);
    if (!r) co_return std::move(r).error();
    if (r->sqlstate == "23505") {  // unique violation: the key is in the log already
        key_taken_.fetch_add(1, std::memory_order_relaxed);
        co_return append_result{append_result::kind::key_taken, 0};
    }
    if (!r->ok()) co_return store_failure(*r);
    if (r->size() == 0) {
        stale_.fetch_add(1, std::memory_order_relaxed);
        co_return append_result{append_result::kind::stale, 0};
    }
    appended_.fetch_add(1, std::memory_order_relaxed);
    co_return append_result{append_result::kind::appended, to_u64(r->at(0, 0))};
}

// Each in a transaction of its own (kind::alone): one members row each, so they cannot deadlock
// with each other or with the next batch, and a refused one (a key taken) takes nothing with it.
asio::awaitable<void> pg_member_log::append_each_alone(pg_member_log* self, std::size_t worker,
                                                       std::shared_ptr<pending_append> p) {
    auto r = co_await self->append_alone(worker, p->until, p->args, pg::kind::alone);
    p->complete(std::move(r));
}

// Takes every append waiting on the worker, as one statement, until none waits: while one is in
// flight the next batch forms, as the connection's group commit did for single statements.
asio::awaitable<void> pg_member_log::flush_appends(pg_member_log* self, std::size_t worker) {
    constexpr std::size_t max_rows = 512;
    append_queue& q = *self->queues_[worker];
    // Also when the frame is destroyed with the io_context: the next append starts a new flush.
    struct done_guard {
        append_queue& q;
        ~done_guard() { q.flushing = false; }
    } done{q};
    while (!q.waiting.empty()) {
        std::vector<std::shared_ptr<pending_append>> batch;
        const std::size_t n = std::min(max_rows, q.waiting.size());
        batch.assign(q.waiting.begin(), q.waiting.begin() + static_cast<std::ptrdiff_t>(n));
        q.waiting.erase(q.waiting.begin(), q.waiting.begin() + static_cast<std::ptrdiff_t>(n));
        std::erase_if(batch, [](const auto& p) { return p->abandoned; });
        if (batch.empty()) continue;
        try {
            co_await self->append_batch(worker, batch);
        } catch (const std::exception& e) {  // bad_alloc and the like: these fail, the flush goes on
            for (auto& p : batch)
                if (!p->outcome) p->complete(fail(errc::internal, std::string("the batched append failed: ") + e.what()));
        }
    }
}

asio::awaitable<void> pg_member_log::append_batch(std::size_t worker, std::vector<std::shared_ptr<pending_append>>& batch) {
    if (batch.size() == 1) {  // the plain statement; awaited: what arrives meanwhile is the next batch
        auto r = co_await append_alone(worker, batch.front()->until, batch.front()->args, pg::kind::write);
        batch.front()->complete(std::move(r));
        co_return;
    }
    std::sort(batch.begin(), batch.end(), [](const auto& a, const auto& b) { return a->member() < b->member(); });
    // One member twice would be "ON CONFLICT DO UPDATE command cannot affect row a second time";
    // a replica's member turns make it impossible, so this is only a guard.
    const bool twice = std::adjacent_find(batch.begin(), batch.end(), [](const auto& a, const auto& b) {
                           return a->member() == b->member();
                       }) != batch.end();
    if (twice) {
        for (auto& p : batch) asio::co_spawn(executors_[worker], append_each_alone(this, worker, p), asio::detached);
        co_return;
    }
    pg_array cols[6];
    deadline until = batch.front()->until;
    for (const auto& p : batch) {
        for (std::size_t c = 0; c < 6; ++c) cols[c].text(p->args[c]);
        if (p->until.at() > until.at()) until = p->until;
    }
    params args;
    for (auto& c : cols) args.emplace_back(std::move(c).done());
    auto r = co_await exec_on(worker, until, "append_many", std::move(args), pg::kind::write);
    if (!r) {
        for (auto& p : batch) p->complete(r.error());
        co_return;
    }
    if (!r->ok()) {  // a key logged meanwhile by another replica, a deadlock, ...: one by one
        for (auto& p : batch) asio::co_spawn(executors_[worker], append_each_alone(this, worker, p), asio::detached);
        co_return;
    }
    std::unordered_map<std::string_view, std::size_t> row_of;
    for (std::size_t i = 0; i < r->size(); ++i)
        if (const auto& m = r->at(i, 0)) row_of.emplace(*m, i);
    for (auto& p : batch) {
        auto it = row_of.find(p->member());
        if (it == row_of.end()) {
            p->complete(fail(errc::internal, "the state store's batched append left out a row"));
            continue;
        }
        const std::size_t i = it->second;
        if (r->at(i, 2).value_or("f") == "t") {
            key_taken_.fetch_add(1, std::memory_order_relaxed);
            p->complete(append_result{append_result::kind::key_taken, 0});
        } else if (r->at(i, 1)) {
            appended_.fetch_add(1, std::memory_order_relaxed);
            p->complete(append_result{append_result::kind::appended, to_u64(r->at(i, 1))});
        } else {
            stale_.fetch_add(1, std::memory_order_relaxed);
            p->complete(append_result{append_result::kind::stale, 0});
        }
    }
}

asio::awaitable<result<std::optional<logged_answer>>> pg_member_log::find_key(const std::string& member, std::string_view key,
                                                                              const call_context& ctx) {
    params args{member, std::string(key)};
    auto r = co_await exec(ctx, "find_key", std::move(args), pg::kind::read);
    if (!r) co_return std::move(r).error();
    if (!r->ok()) co_return store_failure(*r);
    // One return of a named optional: g++ 12 warns that an empty one returned from a coroutine
    // frame "may be used uninitialized" (-Wmaybe-uninitialized, a false positive).
    std::optional<logged_answer> found;
    if (r->size() > 0) found.emplace(logged_answer{to_u64(r->at(0, 0)), r->at(0, 1).value_or("")});
    co_return found;
}

asio::awaitable<result<std::vector<logged_transaction>>> pg_member_log::rows(const std::string& member, std::uint64_t after,
                                                                            std::uint64_t up_to, const call_context& ctx) {
    params args{member, std::to_string(after), std::to_string(up_to)};
    auto r = co_await exec(ctx, "rows", std::move(args), pg::kind::read);
    if (!r) co_return std::move(r).error();
    if (!r->ok()) co_return store_failure(*r);
    std::vector<logged_transaction> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
        auto row = logged(r->at(i, 0), r->at(i, 1));
        if (!row) co_return std::move(row).error();
        out.push_back(std::move(*row));
    }
    co_return out;
}

asio::awaitable<result<std::monostate>> pg_member_log::delivered(const std::string& member, std::uint64_t seq,
                                                                 const call_context& ctx) {
    params args{member, std::to_string(seq)};
    auto r = co_await exec(ctx, "delivered", std::move(args), pg::kind::alone);
    if (!r) co_return std::move(r).error();
    if (!r->ok()) co_return store_failure(*r);
    co_return std::monostate{};
}

asio::awaitable<result<std::vector<std::string>>> pg_member_log::delivered_many(
    const std::vector<std::pair<std::string, std::uint64_t>>& marks, const call_context& ctx) {
    pg_array members, seqs;
    for (const auto& [m, seq] : marks) {
        members.text(std::string_view(m));
        seqs.number(seq);
    }
    params args{std::move(members).done(), std::move(seqs).done()};
    auto r = co_await exec(ctx, "delivered_many", std::move(args), pg::kind::alone);
    if (!r) co_return std::move(r).error();
    if (!r->ok()) co_return store_failure(*r);
    std::unordered_set<std::string_view> marked;
    for (std::size_t i = 0; i < r->size(); ++i)
        if (const auto& m = r->at(i, 0)) marked.insert(*m);
    std::vector<std::string> skipped;
    for (const auto& [m, seq] : marks)
        if (!marked.contains(m)) skipped.push_back(m);
    co_return skipped;
}

asio::awaitable<result<std::monostate>> pg_member_log::refused(const std::string& member, std::uint64_t seq,
                                                               const call_context& ctx) {
    params args{member, std::to_string(seq)};
    auto r = co_await exec(ctx, "refused", std::move(args), pg::kind::alone);
    if (!r) co_return std::move(r).error();
    if (!r->ok()) co_return store_failure(*r);
    co_return std::monostate{};
}

asio::awaitable<result<std::vector<std::string>>> pg_member_log::undelivered_members(std::size_t limit,
                                                                                    std::chrono::milliseconds older_than,
                                                                                    const call_context& ctx) {
    params args{std::to_string(limit), std::to_string(older_than.count())};
    auto r = co_await exec(ctx, "undelivered", std::move(args), pg::kind::read);
    if (!r) co_return std::move(r).error();
    if (!r->ok()) co_return store_failure(*r);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < r->size(); ++i) out.push_back(r->at(i, 0).value_or(""));
    co_return out;
}

asio::awaitable<result<std::uint64_t>> pg_member_log::prune(std::chrono::milliseconds retention, const call_context& ctx) {
    params args{std::to_string(retention.count())};
    auto r = co_await exec(ctx, "prune", std::move(args), pg::kind::write);
    if (!r) co_return std::move(r).error();
    if (!r->ok()) co_return store_failure(*r);
    co_return r->affected;
}

bool pg_member_log::connected() const {
    for (const auto& c : conns_)
        if (!c->connected()) return false;
    return !conns_.empty();
}

void pg_member_log::write_metrics(std::string& out) const {
    write_metric_header(out, "offerd_state_appends_total", "counter",
                        "Appends to the member log: committed, refused by the fence (stale history, decided again), "
                        "refused because the Idempotency-Key was logged already (replayed).");
    write_sample(out, "offerd_state_appends_total", "outcome=\"appended\"", static_cast<double>(appended_.load()));
    write_sample(out, "offerd_state_appends_total", "outcome=\"stale\"", static_cast<double>(stale_.load()));
    write_sample(out, "offerd_state_appends_total", "outcome=\"key_taken\"", static_cast<double>(key_taken_.load()));
    std::uint64_t commits = 0, writes = 0;
    for (const auto& c : conns_) {
        commits += c->stats().commits;
        writes += c->stats().writes;
    }
    write_metric_header(out, "offerd_state_commits_total", "counter",
                        "Commits of the state store's connections (appended / commits = appends per commit).");
    write_sample(out, "offerd_state_commits_total", {}, static_cast<double>(commits));
    write_metric_header(out, "offerd_state_writes_total", "counter", "Write statements committed (the appends waiting on a worker are one statement).");
    write_sample(out, "offerd_state_writes_total", {}, static_cast<double>(writes));
    write_metric_header(out, "offerd_state_connected", "gauge", "1 while every worker's state store connection is up.");
    write_sample(out, "offerd_state_connected", {}, connected() ? 1.0 : 0.0);
}

}  // namespace offerd
