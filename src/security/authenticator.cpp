// Credential checks and per-client limits.
#include "offerd/security/authenticator.hpp"

#include <algorithm>
#include <stdexcept>

namespace offerd {

authenticator::authenticator(const security_config& cfg)
    : cfg_(cfg), rules_{cfg.jwt_issuer, cfg.jwt_audience, cfg.jwt_leeway}, keys_(std::make_shared<key_set>()) {
    if (!cfg_.api_keys_file.empty()) {
        auto k = load_key_file(cfg_.api_keys_file);
        if (!k) throw std::runtime_error(k.error().detail);
        keys_ = std::make_shared<const key_set>(std::move(*k));
    }
    if (!cfg_.jwt_key_file.empty()) {
        auto k = jwt_key::load(cfg_.jwt_key_file);
        if (!k) throw std::runtime_error(k.error().detail);
        jwt_ = std::move(*k);
    }
}

result<std::size_t> authenticator::reload_keys() {
    if (cfg_.api_keys_file.empty()) return std::size_t{0};
    auto k = load_key_file(cfg_.api_keys_file);
    if (!k) return std::move(k).error();
    auto fresh = std::make_shared<const key_set>(std::move(*k));
    const std::size_t n = fresh->size();
    const std::lock_guard lock(keys_mutex_);
    keys_ = std::move(fresh);
    return n;
}

void authenticator::add_own_key(std::string name, std::string_view key) {
    own_ = key_set({api_client{std::move(name), sha256(key), std::nullopt}});
}

std::shared_ptr<const key_set> authenticator::keys() const {
    const std::lock_guard lock(keys_mutex_);
    return keys_;
}

auth_outcome authenticator::authenticate(std::string_view authorization, std::chrono::system_clock::time_point now) const {
    if (authorization.empty()) return {std::nullopt, "missing"};
    const auto token = parse_bearer(authorization);
    if (!token) return {std::nullopt, "malformed"};
    if (const auto ks = keys(); own_.size() > 0 || ks->size() > 0) {
        const sha256_digest digest = sha256(*token);  // once, for this process's own key and the keys file
        for (const key_set* set : {&own_, ks.get()})
            if (const api_client* c = set->find(digest)) return {identity{c->name, c->limit.value_or(cfg_.rate)}, {}};
    }
    if (jwt_ && std::count(token->begin(), token->end(), '.') == 2) {
        auto claims = verify_jwt(*token, *jwt_, rules_, now);
        if (!claims) return {std::nullopt, std::move(claims).error().detail};
        return {identity{std::move(claims->subject), cfg_.rate}, {}};
    }
    return {std::nullopt, "unknown_key"};
}

}  // namespace offerd
