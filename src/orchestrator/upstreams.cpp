// Typed upstream calls and their status/body mapping.
#include "offerd/orchestrator/upstreams.hpp"

#include "offerd/obs/log.hpp"

namespace offerd {

struct upstreams::worker_clients {
    worker_clients(asio::io_context& ctx, const url& md, const url& pr, const url& oe, const client_limits& l)
        : member_data(ctx.get_executor(), md, l), prediction(ctx.get_executor(), pr, l), offer_engine(ctx.get_executor(), oe, l) {}
    http_client member_data;
    http_client prediction;
    http_client offer_engine;
};

upstreams::upstreams(std::span<asio::io_context* const> workers, const url& member_data, const url& prediction,
                     const url& offer_engine, const client_limits& limits) {
    for (asio::io_context* w : workers)
        clients_.push_back(std::make_unique<worker_clients>(*w, member_data, prediction, offer_engine, limits));
}

upstreams::~upstreams() = default;

namespace {

constexpr std::string_view svc_member_data = "member-data";
constexpr std::string_view svc_prediction = "prediction";
constexpr std::string_view svc_offer_engine = "offer-engine";

void log_failure(const call_context& ctx, std::string_view service, std::string_view path, const failure& f,
                 unsigned status = 0) {
    log_event e(ctx.log, log_level::warn, "upstream_error", ctx.request_id);
    e.with("service", service).with("path", path).with("attempt", 1).with("outcome", errc_name(f.code));
    if (status != 0) e.with("status", static_cast<std::int64_t>(status));
    e.with("error", f.detail);
}

// Sends and maps transport failures and non-expected statuses; returns the response otherwise.
asio::awaitable<result<response>> call(http_client& client, const call_context& ctx, std::string_view service,
                                       http::verb method, std::string path, std::string body, unsigned also_ok = 0) {
    auto res = co_await client.send(method, path, std::move(body), call_options{ctx.request_id, ctx.until, {}});
    if (!res) {
        failure f = std::move(res).error();
        f.detail = std::string(service) + ": " + f.detail;
        log_failure(ctx, service, path, f);
        co_return f;
    }
    const unsigned status = res->result_int();
    if (status != 200 && status != also_ok) {
        failure f = fail(errc::upstream_bad_status, std::string(service) + " answered HTTP " + std::to_string(status));
        log_failure(ctx, service, path, f, status);
        co_return f;
    }
    co_return res;
}

template <class T>
result<T> bad_body(const call_context& ctx, std::string_view service, std::string_view path, const failure& why) {
    failure f = fail(errc::upstream_bad_response, std::string(service) + " answered an invalid body");
    log_failure(ctx, service, path, fail(errc::upstream_bad_response, why.detail), 200);
    return f;
}

}  // namespace

asio::awaitable<result<decoded_history>> upstreams::fetch_history(std::size_t worker, const std::string& member_id,
                                                                  const call_context& ctx) {
    std::string path = "/member_data/" + member_id;
    auto res = co_await call(clients_[worker]->member_data, ctx, svc_member_data, http::verb::get, path, {}, 404);
    if (!res) co_return std::move(res).error();
    if (res->result() == http::status::not_found) co_return decoded_history{};
    auto h = decode_history(res->body());
    if (!h) co_return bad_body<decoded_history>(ctx, svc_member_data, path, h.error());
    co_return h;
}

asio::awaitable<result<double>> upstreams::predict(std::size_t worker, model m, std::string features_json,
                                                   const call_context& ctx) {
    const char* path = m == model::ats ? "/ml/ats/predict" : "/ml/resp/predict";
    auto res = co_await call(clients_[worker]->prediction, ctx, svc_prediction, http::verb::post, path,
                             std::move(features_json));
    if (!res) co_return std::move(res).error();
    auto p = decode_prediction(res->body());
    if (!p) co_return bad_body<double>(ctx, svc_prediction, path, p.error());
    co_return p;
}

asio::awaitable<result<std::string>> upstreams::assign_offer(std::size_t worker, offer_request r,
                                                             const call_context& ctx) {
    constexpr const char* path = "/offer/assign";
    auto res = co_await call(clients_[worker]->offer_engine, ctx, svc_offer_engine, http::verb::post, path,
                             encode_offer_request(r));
    if (!res) co_return std::move(res).error();
    auto o = decode_offer(res->body());
    if (!o) co_return bad_body<std::string>(ctx, svc_offer_engine, path, o.error());
    co_return o;
}

asio::awaitable<result<done>> upstreams::persist(std::size_t worker, const transaction& t, const call_context& ctx) {
    auto res = co_await call(clients_[worker]->member_data, ctx, svc_member_data, http::verb::post, "/member_data",
                             encode_transaction(t));
    if (!res) co_return std::move(res).error();
    co_return done{};
}

}  // namespace offerd
