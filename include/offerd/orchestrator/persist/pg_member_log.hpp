// The member log on PostgreSQL: one pipelined connection per worker (store/pg_connection),
// the schema created or migrated on start.
#pragma once

#include <boost/asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "offerd/net/worker.hpp"
#include "offerd/orchestrator/persist/member_log.hpp"
#include "offerd/store/pg_connection.hpp"

namespace offerd {

class logger;

// Thread-safe: connection i is used only on worker i's io_context (ctx.worker), the counters
// are atomics.
class pg_member_log final : public member_log {
public:
    // Creates or migrates the schema (versioned; safe when several replicas start at once:
    // one transaction under an advisory lock), on a private io_context of the calling thread,
    // waiting up to `timeout` for PostgreSQL. Then one connection per worker, started.
    // Throws std::runtime_error with a one-line message when PostgreSQL cannot be reached or
    // the schema cannot be made.
    pg_member_log(worker_set workers, const std::string& url, logger& log,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10));
    ~pg_member_log() override;

    asio::awaitable<result<member_head>> head(const std::string& member, const call_context& ctx) override;
    asio::awaitable<result<append_result>> append(const std::string& member, const append_request& r,
                                                  const call_context& ctx) override;
    asio::awaitable<result<std::optional<logged_answer>>> find_key(const std::string& member, std::string_view key,
                                                                   const call_context& ctx) override;
    asio::awaitable<result<std::vector<logged_transaction>>> rows(const std::string& member, std::uint64_t after,
                                                                 std::uint64_t up_to, const call_context& ctx) override;
    asio::awaitable<result<std::monostate>> delivered(const std::string& member, std::uint64_t seq,
                                                      const call_context& ctx) override;
    asio::awaitable<result<std::vector<std::string>>> delivered_many(const std::vector<std::pair<std::string, std::uint64_t>>& marks,
                                                           const call_context& ctx) override;
    asio::awaitable<result<std::monostate>> refused(const std::string& member, std::uint64_t seq,
                                                    const call_context& ctx) override;
    asio::awaitable<result<std::vector<std::string>>> undelivered_members(std::size_t limit, std::chrono::milliseconds older_than, const call_context& ctx) override;
    asio::awaitable<result<std::uint64_t>> prune(std::chrono::milliseconds retention, const call_context& ctx) override;

    bool connected() const override;
    void write_metrics(std::string& out) const override;
    // Closes the connections (pending statements fail), posted to each worker. Idempotent.
    void stop() override;

    // The schema version this build creates.
    static constexpr int schema_version = 1;

private:
    using params = std::vector<std::optional<std::string>>;
    struct pending_append;  // one append waiting for its worker's next multi-row statement
    struct append_queue {   // a worker's; used on that worker only
        std::vector<std::shared_ptr<pending_append>> waiting;
        bool flushing = false;  // a flush coroutine runs (it takes what waits, until none does)
    };

    std::size_t worker_of(const call_context& ctx) const { return ctx.worker % conns_.size(); }
    asio::awaitable<result<pg::rows>> exec(const call_context& ctx, const char* stmt, params args, pg::kind k) {
        return exec_on(worker_of(ctx), ctx.until, stmt, std::move(args), k);
    }
    asio::awaitable<result<pg::rows>> exec_on(std::size_t worker, deadline until, const char* stmt, params args,
                                              pg::kind k);
    asio::awaitable<result<append_result>> append_alone(std::size_t worker, deadline until, params args, pg::kind k);
    static asio::awaitable<void> flush_appends(pg_member_log* self, std::size_t worker);
    asio::awaitable<void> append_batch(std::size_t worker, std::vector<std::shared_ptr<pending_append>>& batch);
    static asio::awaitable<void> append_each_alone(pg_member_log* self, std::size_t worker,
                                                   std::shared_ptr<pending_append> p);

    logger& log_;
    std::vector<std::unique_ptr<pg::connection>> conns_;
    std::vector<asio::any_io_executor> executors_;  // conns_[i] lives on executors_[i]
    std::vector<std::unique_ptr<append_queue>> queues_;  // queues_[i] on executors_[i] too
    std::atomic<std::uint64_t> appended_{0}, stale_{0}, key_taken_{0};
};

}  // namespace offerd
