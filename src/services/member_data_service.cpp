// member-data: validates and stores transactions, serves histories.
#include "offerd/codec/wire.hpp"
#include "offerd/services/member_store.hpp"
#include "offerd/services/services.hpp"

namespace offerd {

void add_health_route(router& r) {
    r.add(http::verb::get, "/health", [](request_context&) -> asio::awaitable<response> {
        co_return json_response(http::status::ok, R"({"status":"ok"})");
    });
}

std::shared_ptr<router> make_member_data_router(std::shared_ptr<member_store> store) {
    auto r = std::make_shared<router>();
    add_health_route(*r);
    r->add(http::verb::post, "/member_data", [store](request_context& ctx) -> asio::awaitable<response> {
        auto t = decode_transaction(ctx.req.body());
        if (!t) co_return failure_response(t.error());
        store->append(*t);
        co_return json_response(http::status::ok, encode_transaction(*t));
    });
    r->add(http::verb::get, "/member_data/{memberId}", [store](request_context& ctx) -> asio::awaitable<response> {
        std::string body;
        if (!store->history_json(ctx.param, body)) co_return detail_response(http::status::not_found, "Member not found");
        co_return json_response(http::status::ok, std::move(body));
    });
    return r;
}

}  // namespace offerd
