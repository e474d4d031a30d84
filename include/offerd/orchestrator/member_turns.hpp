// Per-member turns: one holder at a time per member, in arrival order; different members in
// parallel. The orchestrator keeps two of these (deciding, delivering); see offer_pipeline.
#pragma once

#include <array>
#include <cstdint>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "offerd/domain/deadline.hpp"
#include "offerd/domain/errors.hpp"

namespace offerd {

namespace asio = boost::asio;

// Shared by all workers. Each shard's map is guarded by its mutex (held for a few instructions,
// never across a suspension). A waiter parks on a timer on its own single-threaded io_context;
// the releasing thread grants the turn by marking it and cancelling the timer on that
// io_context (directly when it is the current thread, else by a post).
class member_turns {
public:
    class lease {
    public:
        lease() = default;
        lease(lease&& o) noexcept : owner_(o.owner_), member_(std::move(o.member_)) { o.owner_ = nullptr; }
        lease& operator=(lease&& o) noexcept;
        ~lease() { release(); }
        // Ends the turn; the member's next queued request gets it. Idempotent.
        void release();
        bool held() const noexcept { return owner_ != nullptr; }

    private:
        friend class member_turns;
        lease(member_turns* owner, std::string member) : owner_(owner), member_(std::move(member)) {}
        member_turns* owner_ = nullptr;
        std::string member_;
    };

    // Waits for this member's earlier holders. Fails with deadline_exceeded when the turn does
    // not come before `until`, and at once with member_busy when `max_waiting` of the member's
    // requests already wait (the holder not counted). Must be awaited on a single-threaded
    // io_context.
    asio::awaitable<result<lease>> acquire(std::string member, deadline until, std::size_t max_waiting = SIZE_MAX);

    // Whether anyone holds or waits for the member's turn (a snapshot).
    bool busy(std::string_view member) const;
    std::size_t busy_members() const;

private:
    struct waiter {
        asio::any_io_executor ex;
        asio::steady_timer timer;
        bool granted = false;
        explicit waiter(const asio::any_io_executor& e) : ex(e), timer(e) {}
    };
    struct entry {
        std::deque<std::shared_ptr<waiter>> queue;  // the map holding the entry means "held"
    };
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    struct shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string, entry, string_hash, std::equal_to<>> members;
    };
    static constexpr std::size_t shard_count = 64;
    shard& shard_for(std::string_view member) noexcept;
    const shard& shard_for(std::string_view member) const noexcept;
    void release(const std::string& member);

    std::array<shard, shard_count> shards_;
};

}  // namespace offerd
