// Per-member sequencing: requests for the same member run one after another, in arrival order;
// different members run in parallel.
#pragma once

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "offerd/domain/deadline.hpp"
#include "offerd/net/http.hpp"
#include "offerd/orchestrator/history_handoff.hpp"

namespace offerd {

// Shared by all workers. Each shard's map is guarded by its mutex (held for a few instructions,
// never across a suspension). A waiter parks on a timer on its own single-threaded io_context;
// the releasing thread hands over by marking it granted and posting the timer's cancel to that
// io_context, so the timer is only touched on its own thread.
class member_sequencer {
public:
    class lease {
    public:
        lease() = default;
        lease(lease&& o) noexcept
            : owner_(o.owner_), member_(std::move(o.member_)), handoff_(std::move(o.handoff_)) { o.owner_ = nullptr; }
        lease& operator=(lease&& o) noexcept;
        ~lease() { release(); }
        // Ends the turn. `next` goes to the member's next queued request, if there is one
        // (dropped otherwise).
        void release(std::unique_ptr<history_handoff> next = nullptr);
        // What the previous holder left, when it handed the turn straight to this one.
        std::unique_ptr<history_handoff> take_handoff() noexcept { return std::move(handoff_); }

    private:
        friend class member_sequencer;
        lease(member_sequencer* owner, std::string member, std::unique_ptr<history_handoff> h = nullptr)
            : owner_(owner), member_(std::move(member)), handoff_(std::move(h)) {}
        member_sequencer* owner_ = nullptr;
        std::string member_;
        std::unique_ptr<history_handoff> handoff_;
    };

    // Waits for this member's earlier requests to finish. Fails with deadline_exceeded when the
    // turn does not come before `until`. Must be awaited on a single-threaded io_context.
    asio::awaitable<result<lease>> acquire(std::string member, deadline until);

    std::size_t busy_members() const;

private:
    struct waiter {
        asio::any_io_executor ex;
        asio::steady_timer timer;
        bool granted = false;
        std::unique_ptr<history_handoff> handoff;  // set with granted
        explicit waiter(const asio::any_io_executor& e) : ex(e), timer(e) {}
    };
    struct entry {
        std::deque<std::shared_ptr<waiter>> queue;  // the map holding the entry means "busy"
    };
    struct shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string, entry> members;
    };
    static constexpr std::size_t shard_count = 64;
    shard& shard_for(std::string_view member) noexcept;
    void release(const std::string& member, std::unique_ptr<history_handoff> next);

    std::array<shard, shard_count> shards_;
};

}  // namespace offerd
