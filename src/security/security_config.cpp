// Security settings: validation, the exposure check, rate parsing.
#include "offerd/security/security_config.hpp"

#include <charconv>
#include <cmath>

namespace offerd {

namespace {
// A dotted quad whose first octet is 127.
bool loopback_v4(std::string_view h) noexcept {
    int parts = 0;
    unsigned first = 0;
    while (!h.empty()) {
        const std::size_t dot = h.find('.');
        const std::string_view part = h.substr(0, dot);
        unsigned v = 0;
        const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
        if (part.empty() || part.size() > 3 || ec != std::errc{} || end != part.data() + part.size() || v > 255) return false;
        if (parts++ == 0) first = v;
        if (dot == std::string_view::npos) break;
        h.remove_prefix(dot + 1);
        if (h.empty()) return false;
    }
    return parts == 4 && first == 127;
}
}  // namespace

bool is_loopback_host(std::string_view host) noexcept {
    return host == "localhost" || host == "::1" || host == "[::1]" || loopback_v4(host);
}

result<double> parse_rate(std::string_view text) {
    std::string_view n = text;
    if (n.ends_with("/s")) n.remove_suffix(2);
    double v = 0;
    const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), v);
    if (n.empty() || ec != std::errc{} || end != n.data() + n.size() || !std::isfinite(v) || v < 0.001 || v > 1e6)
        return fail(errc::invalid_field, "'" + std::string(text) + "' is not a rate (expected N/s with 0.001 <= N <= 1000000, e.g. 50/s)");
    return v;
}

std::uint32_t effective_burst(const rate_limit& r) noexcept {
    if (r.burst > 0) return r.burst;
    return r.per_second >= 1 ? static_cast<std::uint32_t>(std::ceil(std::min(r.per_second, 1e6))) : 1u;
}

result<std::monostate> validate(const security_config& cfg) {
    const auto bad = [](std::string what) { return fail(errc::invalid_field, std::move(what)); };
    if (cfg.jwt_leeway.count() < 0 || cfg.jwt_leeway > std::chrono::minutes(10))
        return bad("--jwt-leeway-ms must be between 0 and 600000");
    // The bounds keep the limiter's nanosecond arithmetic (interval x burst) far from overflow.
    if (!cfg.rate.unlimited() && (cfg.rate.per_second < 0.001 || cfg.rate.per_second > 1e6))
        return bad("--rate-limit must be between 0.001/s and 1000000/s");
    if (cfg.rate.burst > 1'000'000) return bad("--rate-burst must be at most 1000000");
    if (cfg.rate.burst > 0 && cfg.rate.unlimited()) return bad("--rate-burst needs --rate-limit");
    if (cfg.tls_cert_file.empty() != cfg.tls_key_file.empty()) return bad("--tls-cert and --tls-key go together");
    const bool creds = cfg.enabled();
    if (!cfg.rate.unlimited() && !creds) return bad("--rate-limit is per client: it needs --api-keys or --jwt-key");
    if (cfg.service_auth && !cfg.services_have_credentials()) return bad("--service-auth needs --service-api-keys, --api-keys or --jwt-key");
    if (!cfg.service_api_keys_file.empty() && !cfg.service_auth) return bad("--service-api-keys needs --service-auth");
    if (cfg.metrics == metrics_auth::on && !creds) return bad("--metrics-auth on needs --api-keys or --jwt-key");
    if ((!cfg.jwt_issuer.empty() || !cfg.jwt_audience.empty()) && cfg.jwt_key_file.empty())
        return bad("--jwt-issuer and --jwt-audience need --jwt-key");
    return std::monostate{};
}

std::string unauthenticated_exposure(const security_config& cfg, std::string_view host, bool orchestrator, bool services) {
    if (cfg.insecure_allow_unauthenticated || is_loopback_host(host)) return {};
    std::string who;
    if (orchestrator && !cfg.enabled()) who = "the orchestrator";
    if (services && !(cfg.service_auth && cfg.services_have_credentials())) who += std::string(who.empty() ? "" : " and ") + "the services";
    if (who.empty()) return {};
    return "refusing to start: " + who + " would answer unauthenticated requests on " + std::string(host) +
           " (give --api-keys or --jwt-key" + (services ? " and --service-auth" : "") +
           ", bind to 127.0.0.1, or pass --insecure-allow-unauthenticated)";
}

}  // namespace offerd
