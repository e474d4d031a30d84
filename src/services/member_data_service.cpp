// member-data: validates and stores transactions, serves histories.
#include <fstream>
#include <mutex>

#include "offerd/app/append_file.hpp"
#include "offerd/codec/record_line.hpp"
#include "offerd/codec/wire.hpp"
#include "offerd/orchestrator/idempotency_cache.hpp"
#include "offerd/services/member_store.hpp"
#include "offerd/services/services.hpp"

namespace offerd {

void add_health_route(router& r) {
    r.add(http::verb::get, "/health", [](request_context&) -> asio::awaitable<response> {
        co_return json_response(http::status::ok, R"({"status":"ok"})");
    });
}

namespace {
// Writes are journaled and stored under one mutex so the journal's order is the store's order.
struct member_data_writer {
    std::shared_ptr<member_store> store;
    idempotency_cache seen{std::chrono::minutes(10), 100'000};
    std::unique_ptr<append_file> journal;
    std::mutex journal_mutex;
    std::uint64_t seq = 0;

    // Appends t (journaled first when a journal is configured). Throws on journal I/O failure.
    // The journal keeps the normalized form; the text as sent is echoed until a restart.
    void write(const std::string& key, const transaction& t, const transaction_text& as_sent) {
        if (!journal) {
            store->append(t, &as_sent);
            return;
        }
        std::lock_guard lock(journal_mutex);
        journal->append(encode_record_line({++seq, key, t}));
        store->append(t, &as_sent);
    }
};

void replay_journal(member_data_writer& w, const std::string& path) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        auto r = decode_record_line(line);
        if (!r) continue;  // a torn write (crash mid-record): the client never got an answer for it
        w.seq = r->seq;
        w.store->append(r->txn);
        if (!r->key.empty()) {
            std::string stored = encode_transaction(r->txn);
            const std::uint64_t h = idempotency_cache::hash(stored);
            w.seen.insert_if_absent(r->key, {h, 200, std::move(stored)});
        }
    }
}
}  // namespace

std::shared_ptr<router> make_member_data_router(std::shared_ptr<member_store> store, const member_data_options& opt) {
    auto r = std::make_shared<router>();
    add_health_route(*r);
    auto w = std::make_shared<member_data_writer>();
    w->store = std::move(store);
    if (!opt.journal.empty()) {
        replay_journal(*w, opt.journal);
        w->journal = std::make_unique<append_file>(opt.journal, opt.journal_fsync);
    }
    r->add(http::verb::post, "/member_data", [w](request_context& ctx) -> asio::awaitable<response> {
        transaction_text as_sent;
        auto t = decode_transaction(ctx.req.body(), &as_sent);
        if (!t) co_return failure_response(t.error());
        // The stored object is what was posted (validated), numbers as parsed.
        std::string body;
        append_transaction(body, *t, &as_sent);
        const auto key_it = ctx.req.find("Idempotency-Key");
        const std::string key = key_it == ctx.req.end() ? std::string() : std::string(key_it->value());
        if (!key.empty()) {
            // A write's identity is its normalized form, so a journal replay recognises repeats.
            const std::uint64_t h = idempotency_cache::hash(encode_transaction(*t));
            if (auto prior = w->seen.insert_if_absent(key, {h, 200, body})) {
                if (prior->body_hash != h)
                    co_return detail_response(http::status::unprocessable_entity, "Idempotency-Key: already used with a different body");
                co_return json_response(http::status::ok, std::move(prior->body));
            }
        }
        try {
            w->write(key, *t, as_sent);
        } catch (const std::exception&) {
            // Not stored: the key must not claim otherwise, and the client must retry.
            if (!key.empty()) w->seen.erase(key);
            co_return detail_response(http::status::service_unavailable, "member-data cannot write its journal");
        }
        co_return json_response(http::status::ok, std::move(body));
    });
    auto store_ref = w->store;
    r->add(http::verb::get, "/member_data/{memberId}", [store = store_ref](request_context& ctx) -> asio::awaitable<response> {
        std::string body;
        if (!store->history_json(ctx.param, body)) co_return detail_response(http::status::not_found, "Member not found");
        co_return json_response(http::status::ok, std::move(body));
    });
    return r;
}

}  // namespace offerd
