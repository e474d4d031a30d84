// Per-member FIFO turns with deadline-bounded waits.
#include "offerd/orchestrator/member_turns.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

#include "offerd/net/http.hpp"

namespace offerd {

member_turns::lease& member_turns::lease::operator=(lease&& o) noexcept {
    if (this != &o) {
        release();
        owner_ = o.owner_;
        member_ = std::move(o.member_);
        o.owner_ = nullptr;
    }
    return *this;
}

void member_turns::lease::release() {
    if (owner_) owner_->release(member_);
    owner_ = nullptr;
}

member_turns::shard& member_turns::shard_for(std::string_view member) noexcept {
    return shards_[string_hash{}(member) % shard_count];
}

const member_turns::shard& member_turns::shard_for(std::string_view member) const noexcept {
    return shards_[string_hash{}(member) % shard_count];
}

asio::awaitable<result<member_turns::lease>> member_turns::acquire(std::string member, deadline until, std::size_t max_waiting) {
    shard& s = shard_for(member);
    std::shared_ptr<waiter> w;
    {
        std::lock_guard lock(s.mutex);
        auto [it, inserted] = s.members.try_emplace(member);
        if (inserted) co_return lease(this, std::move(member));
        if (it->second.queue.size() >= max_waiting)
            co_return fail(errc::member_busy, "too many of this member's requests are waiting; retry later");
        w = std::make_shared<waiter>(co_await asio::this_coro::executor);
        it->second.queue.push_back(w);
    }
    w->timer.expires_at(until.at());
    co_await w->timer.async_wait(nothrow);
    {
        std::lock_guard lock(s.mutex);
        if (w->granted) co_return lease(this, std::move(member));
        // Timed out: leave the queue so nobody grants the turn to us.
        auto& q = s.members.find(member)->second.queue;
        q.erase(std::find(q.begin(), q.end(), w));
    }
    co_return fail(errc::deadline_exceeded, "request deadline exceeded while waiting for this member's earlier requests");
}

void member_turns::release(const std::string& member) {
    shard& s = shard_for(member);
    std::lock_guard lock(s.mutex);
    auto it = s.members.find(member);
    if (it == s.members.end()) return;
    auto& q = it->second.queue;
    if (q.empty()) {
        s.members.erase(it);
        return;
    }
    std::shared_ptr<waiter> next = std::move(q.front());
    q.pop_front();
    next->granted = true;
    // The timer may only be touched on its own thread. When that is this thread (the waiter's
    // client connection is served by the same worker), cancel now: a post would cost the
    // member's queue one more trip through the event loop per turn.
    if (const auto* own = next->ex.target<asio::io_context::executor_type>(); own && own->running_in_this_thread())
        next->timer.cancel();
    else
        asio::post(next->ex, [next] { next->timer.cancel(); });
}

bool member_turns::busy(std::string_view member) const {
    const shard& s = shard_for(member);
    std::lock_guard lock(s.mutex);
    return s.members.find(member) != s.members.end();
}

std::size_t member_turns::busy_members() const {
    std::size_t n = 0;
    for (const shard& s : shards_) {
        std::lock_guard lock(s.mutex);
        n += s.members.size();
    }
    return n;
}

}  // namespace offerd
