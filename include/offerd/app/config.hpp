// Application configuration: plain structs with documented defaults, validated once at start-up.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "offerd/domain/timestamp.hpp"
#include "offerd/net/http_server.hpp"
#include "offerd/obs/log.hpp"
#include "offerd/orchestrator/config.hpp"
#include "offerd/security/security_config.hpp"
#include "offerd/services/services.hpp"

namespace offerd {

enum class role : std::uint8_t { orchestrator = 1, member_data = 2, prediction = 4, offer_engine = 8 };
inline constexpr std::uint8_t all_roles = 15;
const char* to_string(role r) noexcept;

struct app_config {
    std::uint8_t roles = all_roles;
    std::string host = "127.0.0.1";
    std::uint16_t orchestrator_port = 8000;
    std::uint16_t member_data_port = 8001;
    std::uint16_t prediction_port = 8002;
    std::uint16_t offer_engine_port = 8003;
    std::size_t threads = 0;  // 0: one per CPU this process may use
    // Worker threads run SCHED_FIFO at this priority when the process may (0: never); see scheduling.hpp.
    int realtime_priority = 0;
    std::chrono::microseconds sched_slice{100};  // per worker thread when not real-time, on kernels that take one (0: kernel default)
    server_limits limits;
    orchestrator_config orchestrator;
    member_data_options member_data;
    double prediction_fault_share = 0;  // the prediction stand-in answers 500 to this share of inputs
    log_config log;
    std::chrono::milliseconds throughput_interval{10'000};  // 0 disables the throughput event
    std::chrono::milliseconds ready_interval{1'000};        // upstream health probe period for GET /ready (0: off)
    std::chrono::milliseconds shutdown_timeout{10'000};     // drain budget on SIGINT/SIGTERM
    security_config security;  // authentication, rate limits, upstream credentials (README: Security)

    bool has(role r) const noexcept { return (roles & static_cast<std::uint8_t>(r)) != 0; }
};

// Parses "all" or a comma-separated list of role names into a bit set.
result<std::uint8_t> parse_roles(std::string_view text);

}  // namespace offerd
