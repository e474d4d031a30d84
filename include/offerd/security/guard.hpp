// The security gate in front of the listeners: builds the authenticator from the config, puts a
// guard on each router (401 / 429 answers, the client's name in request_context), reloads the
// keys file, and counts rejections and clients for /metrics.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "offerd/net/router.hpp"
#include "offerd/security/authenticator.hpp"
#include "offerd/security/security_config.hpp"

namespace offerd {

struct guard_policy {
    bool require_auth = true;      // every route but GET /health, /openapi.json and /docs needs a credential
    bool protect_metrics = true;   // GET /metrics and GET /ready need one too
};

// How one listener is guarded: the orchestrator always when credentials are configured, the
// services with --service-auth; /metrics and /ready per --metrics-auth (automatic: protected on a
// non-loopback bind).
guard_policy listener_policy(const security_config& cfg, std::string_view host, bool orchestrator);

// Counts shared by every listener's guard. Thread-safe (one mutex; a request takes it once).
class auth_counters {
public:
    void rejected(std::string_view listener, std::string_view reason);
    void client(std::string_view name, bool allowed);
    // offerd_auth_rejected_total{listener,reason}, offerd_client_requests_total{client,outcome}.
    void write(std::string& out) const;

private:
    static constexpr std::size_t max_clients = 1'000;  // beyond: counted as client="other"
    mutable std::mutex mutex_;  // guards both maps
    std::map<std::pair<std::string, std::string>, std::uint64_t> rejected_;
    std::map<std::string, std::array<std::uint64_t, 2>, std::less<>> clients_;  // allowed, rate_limited
};

class security_gate {
public:
    // Validates the settings, refuses an unauthenticated non-loopback bind (see
    // unauthenticated_exposure; `services`: a service listener runs here), loads the keys file
    // and the JWT key. Throws std::runtime_error with one line (never a secret) on any of these.
    security_gate(const security_config& cfg, std::string host, bool orchestrator, bool services);

    // Sets r.guard for a listener (nothing when no credentials are configured). The guard
    // answers 401 with `WWW-Authenticate: Bearer` and a detail that does not say what failed,
    // and 429 with Retry-After, RateLimit-Policy and RateLimit; else it records the client's
    // name in the request_context and lets the handler run.
    void protect(router& r, std::string_view listener, bool orchestrator) const;

    // Re-reads the keys files (SIGHUP); see authenticator::reload_keys. The clients now known to
    // the orchestrator and the services together; on a failure the keys in use stay.
    result<std::size_t> reload_keys();

    // With --service-auth and service listeners here: the key the orchestrator of this process
    // sends to them when no --*-key-file is given, so that one process needs no key files. Random
    // (256 bits from OpenSSL), made on the first call, accepted only by those listeners, as
    // client "orchestrator.self". Empty otherwise. Call before serving.
    std::string own_service_key();

    void write_metrics(std::string& out) const;
    bool enabled() const noexcept { return auth_ != nullptr || services_auth_ != nullptr; }

private:
    security_config cfg_;
    std::string host_;
    std::shared_ptr<authenticator> auth_;  // the orchestrator's clients; null: no credentials configured
    // With --service-auth, the service listeners' own: over --service-api-keys (else the same
    // files as auth_), without --rate-limit (a service's callers are the orchestrators, which
    // admission control bounds; a keys-file line's own rate still applies). Its own buckets.
    std::shared_ptr<authenticator> services_auth_;
    std::shared_ptr<auth_counters> counters_;
    std::string own_service_key_;
};

// "Bearer <key>" from a key file (one line), or "" when `path` is empty. Throws
// std::runtime_error naming `flag` and the path when it cannot be read or is not a Bearer token.
std::string upstream_authorization(const std::string& path, std::string_view flag);

}  // namespace offerd
