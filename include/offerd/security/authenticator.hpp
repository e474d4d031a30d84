// Who is calling: a Bearer credential checked against the API keys and the JWT key, and that
// client's rate limit. One instance is shared by every listener and worker thread.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "offerd/security/api_keys.hpp"
#include "offerd/security/jwt.hpp"
#include "offerd/security/rate_limiter.hpp"
#include "offerd/security/security_config.hpp"

namespace offerd {

struct identity {
    std::string client;  // the key's name or the JWT's subject: logged and counted, never the credential
    rate_limit limit;    // the keys file's override, else the configured one
};

struct auth_outcome {
    std::optional<identity> who;
    // Why not, when !who, for metrics: missing, malformed, unknown_key, or a verify_jwt reason.
    // Never sent to the caller.
    std::string reason;
};

class authenticator {
public:
    // Loads the keys file and the JWT key. Throws std::runtime_error with a one-line message
    // naming the flag and the file (never its content) when one cannot be read or parsed.
    explicit authenticator(const security_config& cfg);

    // Re-reads the keys file (SIGHUP). On failure the keys in use stay and the failure says why;
    // on success, the number of clients now known. Without --api-keys: 0.
    result<std::size_t> reload_keys();

    // Checks an Authorization header value: an API key first, then (when configured and the
    // token has a JWT's shape) a JWT. Thread-safe.
    auth_outcome authenticate(std::string_view authorization, std::chrono::system_clock::time_point now) const;

    // Accepts `key` as client `name` besides the keys file: a key this process made for its own
    // calls, kept across reloads and never written anywhere. Call before serving.
    void add_own_key(std::string name, std::string_view key);

    // Takes one request from the client's bucket. Thread-safe; exact across threads.
    rate_decision admit(const identity& who, rate_limiter::clock::time_point now) { return limiter_.acquire(who.client, who.limit, now); }

    const security_config& config() const noexcept { return cfg_; }

private:
    std::shared_ptr<const key_set> keys() const;

    security_config cfg_;
    jwt_rules rules_;
    std::optional<jwt_key> jwt_;
    mutable std::mutex keys_mutex_;  // guards keys_, which a reload replaces whole
    std::shared_ptr<const key_set> keys_;
    key_set own_;  // add_own_key's
    rate_limiter limiter_;
};

}  // namespace offerd
