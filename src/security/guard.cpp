// The security gate: router guards, 401/429 answers, counts.
#include "offerd/security/guard.hpp"

#include <openssl/rand.h>
#include <stdexcept>

#include "offerd/obs/prometheus.hpp"

namespace offerd {

namespace {

std::string_view path_of(const request& req) {
    std::string_view p = req.target();
    if (const std::size_t q = p.find('?'); q != std::string_view::npos) p = p.substr(0, q);
    return p;
}

response unauthorized() {
    response res = detail_response(http::status::unauthorized, "Unauthorized: a valid Bearer credential is required");
    res.set(http::field::www_authenticate, "Bearer realm=\"offerd\"");
    return res;
}

response too_many(const rate_decision& d) {
    response res = detail_response(http::status::too_many_requests, "Too Many Requests: rate limit exceeded");
    res.set(http::field::retry_after, std::to_string(d.retry_after.count()));
    res.set("RateLimit-Policy", "\"default\";q=" + std::to_string(d.limit) + ";w=" + std::to_string(d.window.count()));
    res.set("RateLimit", "\"default\";r=" + std::to_string(d.remaining) + ";t=" + std::to_string(d.reset.count()));
    return res;
}

}  // namespace

guard_policy listener_policy(const security_config& cfg, std::string_view host, bool orchestrator) {
    guard_policy p;
    p.require_auth = orchestrator || cfg.service_auth;
    p.protect_metrics = cfg.metrics == metrics_auth::on || (cfg.metrics == metrics_auth::automatic && !is_loopback_host(host));
    return p;
}

void auth_counters::rejected(std::string_view listener, std::string_view reason) {
    const std::lock_guard lock(mutex_);
    ++rejected_[{std::string(listener), std::string(reason)}];
}

void auth_counters::client(std::string_view name, bool allowed) {
    const std::lock_guard lock(mutex_);
    auto it = clients_.find(name);
    if (it == clients_.end()) it = clients_.emplace(clients_.size() < max_clients ? std::string(name) : "other", std::array<std::uint64_t, 2>{}).first;
    ++it->second[allowed ? 0 : 1];
}

void auth_counters::write(std::string& out) const {
    const std::lock_guard lock(mutex_);
    write_metric_header(out, "offerd_auth_rejected_total", "counter", "Requests answered 401, by listener and reason.");
    for (const auto& [k, n] : rejected_)
        write_sample(out, "offerd_auth_rejected_total", "listener=\"" + label_value(k.first) + "\",reason=\"" + label_value(k.second) + "\"",
                     static_cast<double>(n));
    write_metric_header(out, "offerd_client_requests_total", "counter", "Authenticated requests by client: allowed or rate_limited (429).");
    for (const auto& [name, n] : clients_) {
        write_sample(out, "offerd_client_requests_total", "client=\"" + label_value(name) + "\",outcome=\"allowed\"", static_cast<double>(n[0]));
        write_sample(out, "offerd_client_requests_total", "client=\"" + label_value(name) + "\",outcome=\"rate_limited\"", static_cast<double>(n[1]));
    }
}

security_gate::security_gate(const security_config& cfg, std::string host, bool orchestrator, bool services)
    : cfg_(cfg), host_(std::move(host)), counters_(std::make_shared<auth_counters>()) {
    if (auto v = validate(cfg_); !v) throw std::runtime_error(v.error().detail);
    if (auto why = unauthenticated_exposure(cfg_, host_, orchestrator, services); !why.empty()) throw std::runtime_error(why);
    if (cfg_.enabled()) auth_ = std::make_shared<authenticator>(cfg_);
    if (cfg_.service_auth && services) {
        security_config own = cfg_;
        own.rate = {};
        if (!own.service_api_keys_file.empty()) {
            own.api_keys_file = own.service_api_keys_file;
            own.jwt_key_file.clear();  // JWTs are for the orchestrator's users, not for service to service calls
        }
        services_auth_ = std::make_shared<authenticator>(own);
    }
}

void security_gate::protect(router& r, std::string_view listener, bool orchestrator) const {
    // A service listener checks its callers against the services' keys; /metrics and /ready of
    // one without --service-auth (--metrics-auth on) against the orchestrator's.
    std::shared_ptr<authenticator> auth = !orchestrator && services_auth_ ? services_auth_ : auth_;
    if (!auth) return;
    const guard_policy policy = listener_policy(cfg_, host_, orchestrator);
    r.guard = [auth = std::move(auth), counters = counters_, policy, name = std::string(listener)](request_context& ctx) -> std::optional<response> {
        const std::string_view path = path_of(ctx.req);
        if (path == "/health" || path == "/openapi.json" || path == "/docs") return std::nullopt;  // always open
        const bool metrics = path == "/metrics" || path == "/ready";
        if (!(metrics ? policy.protect_metrics : policy.require_auth)) return std::nullopt;
        const auto h = ctx.req.find(http::field::authorization);
        auto outcome = auth->authenticate(h == ctx.req.end() ? std::string_view{} : std::string_view(h->value()),
                                          std::chrono::system_clock::now());
        if (!outcome.who) {
            counters->rejected(name, outcome.reason);
            return unauthorized();
        }
        const rate_decision d = auth->admit(*outcome.who, rate_limiter::clock::now());
        counters->client(outcome.who->client, d.allowed);
        if (!d.allowed) return too_many(d);
        ctx.client = std::move(outcome.who->client);
        return std::nullopt;
    };
}

std::string security_gate::own_service_key() {
    if (!services_auth_) return {};
    if (own_service_key_.empty()) {
        sha256_digest bytes{};
        if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) throw std::runtime_error("cannot draw a random key from OpenSSL");
        own_service_key_ = to_hex(bytes);
        services_auth_->add_own_key("orchestrator.self", own_service_key_);
    }
    return own_service_key_;
}

result<std::size_t> security_gate::reload_keys() {
    std::size_t clients = 0;
    for (const auto& a : {auth_, services_auth_}) {
        if (!a) continue;
        auto n = a->reload_keys();
        if (!n) return n;
        clients += *n;
    }
    return clients;
}

void security_gate::write_metrics(std::string& out) const {
    if (auth_) counters_->write(out);
}

std::string upstream_authorization(const std::string& path, std::string_view flag) {
    if (path.empty()) return {};
    auto key = read_secret_file(path);
    if (!key) throw std::runtime_error(std::string(flag) + ": " + key.error().detail);
    if (!parse_bearer("Bearer " + *key)) throw std::runtime_error(std::string(flag) + ": '" + path + "' does not hold a Bearer token (one line of A-Z a-z 0-9 - . _ ~ + /)");
    return "Bearer " + *key;
}

}  // namespace offerd
