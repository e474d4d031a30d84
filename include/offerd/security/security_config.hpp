// Who may call offerd's listeners and how often: the security settings, their defaults and checks.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "offerd/domain/errors.hpp"

namespace offerd {

// A token bucket: `per_second` tokens added continuously, at most `burst` held. per_second 0: unlimited.
struct rate_limit {
    double per_second = 0;
    std::uint32_t burst = 0;  // 0 with a rate: max(1, ceil(per_second))
    bool unlimited() const noexcept { return per_second <= 0; }
};

// Whether GET /metrics and GET /ready need a credential.
enum class metrics_auth : std::uint8_t { automatic, on, off };  // automatic: open on a loopback bind, else on

struct security_config {
    std::string api_keys_file;  // `name:sha256-hex[:N/s[:burst]]` lines, re-read on SIGHUP; empty: no API keys
    std::string jwt_key_file;   // RS256/ES256 public key in PEM, or an HS256 secret (>= 32 bytes); empty: no JWT
    std::string jwt_issuer;     // `iss` a token must carry when not empty
    std::string jwt_audience;   // a value `aud` must carry when not empty
    std::chrono::milliseconds jwt_leeway{30'000};  // clock skew allowed on exp and nbf
    rate_limit rate;            // per client (key name or JWT subject); a keys-file entry may override it
    metrics_auth metrics = metrics_auth::automatic;
    bool service_auth = false;  // member-data, prediction and offer-engine listeners authenticate too
    // The keys those listeners accept (the orchestrator's own, not its clients'); empty: the
    // orchestrator's credentials (--api-keys, --jwt-key). Setting it implies service_auth.
    std::string service_api_keys_file;
    bool insecure_allow_unauthenticated = false;  // start even when a non-loopback listener answers anyone
    // Files holding the key the orchestrator sends as `Authorization: Bearer` to that upstream.
    std::string member_data_key_file, prediction_key_file, offer_engine_key_file;
    // TLS: every listener of the process serves this PEM certificate chain and key (both or
    // neither; empty: plain HTTP). One pair for all: the listeners share one --host, hence one name.
    std::string tls_cert_file, tls_key_file;
    std::string upstream_ca_file;  // PEM CAs that https upstream URLs are verified against; empty: the system store

    bool enabled() const noexcept { return !api_keys_file.empty() || !jwt_key_file.empty(); }
    // What the service listeners authenticate against: --service-api-keys, else --api-keys and --jwt-key.
    bool services_have_credentials() const noexcept { return !service_api_keys_file.empty() || enabled(); }
};

// Checks the settings that do not depend on files: leeway range, rate and burst ranges, a rate
// limit or --service-auth or --metrics-auth on without a credential source, --tls-cert without
// --tls-key or the reverse. Fails with
// invalid_field and a one-line message naming the flag.
result<std::monostate> validate(const security_config& cfg);

// One line when a listener would answer unauthenticated callers on a non-loopback address
// (`host` is where every listener binds; services count only when they run here), unless
// insecure_allow_unauthenticated; empty when it is safe to start.
std::string unauthenticated_exposure(const security_config& cfg, std::string_view host, bool orchestrator, bool services);

// 127.0.0.0/8, ::1 and localhost. Anything else (0.0.0.0, a name, an interface address) is not.
bool is_loopback_host(std::string_view host) noexcept;

// "N/s" or "N" (tokens per second, 0.001 to 1000000, decimals allowed). Fails naming the problem.
result<double> parse_rate(std::string_view text);

// The burst a limit really has (see rate_limit::burst).
std::uint32_t effective_burst(const rate_limit& r) noexcept;

}  // namespace offerd
