// The typed upstream calls: paths, bodies and the decoding of answers, over the generic upstream.
#include "offerd/orchestrator/upstreams.hpp"

#include <stdexcept>
#include <utility>

#include "offerd/orchestrator/config.hpp"

namespace offerd {

std::vector<upstream_config> upstream_entries(const orchestrator_config& cfg, const orchestrator_urls& urls) {
    const auto entry = [&](std::string name, const url& target) {
        return upstream_config{std::move(name), target, cfg.upstream, cfg.retry, cfg.breaker};
    };
    std::vector<upstream_config> out;
    out.push_back(entry("member-data", urls.member_data));
    out.push_back(entry("member-data-writes", urls.member_data));
    out.push_back(entry("prediction", urls.prediction));
    out.push_back(entry("offer-engine", urls.offer_engine));
    return out;
}

namespace {
upstream_request make_request(http::verb method, std::string path, std::string body = {}) {
    upstream_request r;
    r.method = method;
    r.path = std::move(path);
    r.body = std::move(body);
    return r;
}

std::vector<std::unique_ptr<upstream>> build(worker_set workers, std::vector<upstream_config> entries, logger& log) {
    std::vector<std::unique_ptr<upstream>> out;
    for (auto& e : entries) {
        for (const auto& u : out)
            if (u->name() == e.name) throw std::invalid_argument("upstreams: two entries named " + e.name);
        out.push_back(std::make_unique<upstream>(std::move(e), workers, log));
    }
    return out;
}

upstream& named(const std::vector<std::unique_ptr<upstream>>& all, std::string_view name) {
    for (const auto& u : all)
        if (u->name() == name) return *u;
    throw std::invalid_argument("upstreams: no entry named " + std::string(name));
}
}  // namespace

upstreams::upstreams(worker_set workers, std::vector<upstream_config> entries, logger& log)
    : all_(build(workers, std::move(entries), log)),
      reads_(named(all_, "member-data")),
      writes_(named(all_, "member-data-writes")),
      prediction_(named(all_, "prediction")),
      offer_engine_(named(all_, "offer-engine")) {}

asio::awaitable<result<decoded_history>> upstreams::fetch_history(const std::string& member_id, const call_context& ctx) {
    upstream_request req = make_request(http::verb::get, "/member_data/" + member_id);
    req.also_ok = 404;
    const std::string path = req.path;
    auto res = co_await reads_.call(std::move(req), ctx);
    if (!res) co_return std::move(res).error();
    if (res->result() == http::status::not_found) co_return decoded_history{};
    auto h = decode_history(res->body());
    if (!h) co_return reads_.bad_body(ctx, path, h.error());
    co_return h;
}

asio::awaitable<result<double>> upstreams::predict(model m, std::string features_json, const call_context& ctx) {
    const char* path = m == model::ats ? "/ml/ats/predict" : "/ml/resp/predict";
    upstream_request req = make_request(http::verb::post, path, std::move(features_json));
    auto res = co_await prediction_.call(std::move(req), ctx);
    if (!res) co_return std::move(res).error();
    auto p = decode_prediction(res->body());
    if (!p) co_return prediction_.bad_body(ctx, path, p.error());
    co_return p;
}

asio::awaitable<result<std::string>> upstreams::assign_offer(offer_request r, const call_context& ctx) {
    constexpr const char* path = "/offer/assign";
    upstream_request req = make_request(http::verb::post, path, encode_offer_request(r));
    auto res = co_await offer_engine_.call(std::move(req), ctx);
    if (!res) co_return std::move(res).error();
    auto o = decode_offer(res->body());
    if (!o) co_return offer_engine_.bad_body(ctx, path, o.error());
    co_return o;
}

asio::awaitable<result<store_ack>> upstreams::store(const transaction& t, const std::string& key, const call_context& ctx) {
    upstream_request req = make_request(http::verb::post, "/member_data", encode_transaction(t));
    req.idempotent = !key.empty();  // without a key a repeat could store it twice
    req.idempotency_key = key;
    auto res = co_await writes_.call(std::move(req), ctx);
    if (!res) co_return std::move(res).error();
    const auto replayed = res->find("Idempotent-Replayed");
    co_return store_ack{replayed != res->end() && replayed->value() == "true"};
}

offer_clients upstreams::clients() {
    offer_clients c;
    c.fetch_history = [this](const std::string& m, const call_context& ctx) { return fetch_history(m, ctx); };
    c.predict = [this](model m, std::string f, const call_context& ctx) { return predict(m, std::move(f), ctx); };
    c.assign_offer = [this](offer_request r, const call_context& ctx) { return assign_offer(r, ctx); };
    c.store = [this](const transaction& t, const std::string& key, const call_context& ctx) { return store(t, key, ctx); };
    return c;
}

void upstreams::write_metrics(std::string& out) const {
    std::vector<const upstream*> view;
    for (const auto& u : all_) view.push_back(u.get());
    upstream::write_metrics(out, view);
}

}  // namespace offerd
