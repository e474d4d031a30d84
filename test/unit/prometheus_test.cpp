// Prometheus exposition: numbers, the process_* family, the router's latency histogram labels,
// the dropped-log counter (built into component_tests: obs/ lives in offerd_core).
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "offerd/obs/log.hpp"
#include "offerd/obs/process_metrics.hpp"
#include "offerd/obs/prometheus.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;

namespace {
// A /proc/PID/stat line whose command name holds a space and a ") (" to trip naive splitting.
// utime 250, stime 150 ticks; starttime 1000 ticks; vsize 123456789 bytes; rss 2000 pages.
constexpr std::string_view stat_line =
    "4242 (off erd) (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 9 0 1000 123456789 2000 "
    "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

// A temporary directory laid out like /proc for read_process_stats; removed at the end.
struct fake_proc {
    std::filesystem::path root = std::filesystem::temp_directory_path() / ("offerd-proc-" + std::to_string(::getpid()));
    fake_proc() {
        std::filesystem::remove_all(root);
        std::filesystem::create_directories(root / "self" / "fd");
        for (const char* fd : {"0", "1", "2", "7"}) std::ofstream(root / "self" / "fd" / fd) << "";
        std::ofstream(root / "self" / "stat") << stat_line;
        std::ofstream(root / "stat") << "cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n";
        std::ofstream(root / "self" / "limits") << "Limit                     Soft Limit           Hard Limit           Units     \n"
                                                    "Max cpu time              unlimited            unlimited            seconds   \n"
                                                    "Max open files            1024                 524288               files     \n";
    }
    ~fake_proc() { std::filesystem::remove_all(root); }
};

// The value of the sample line that starts with `prefix` + ' ', or -1.
double sample_value(const std::string& text, const std::string& prefix) {
    for (std::size_t at = 0; (at = text.find(prefix + ' ', at)) != std::string::npos; at += prefix.size())
        if (at == 0 || text[at - 1] == '\n') {
            const std::size_t value = at + prefix.size() + 1;
            return std::stod(text.substr(value, text.find('\n', value) - value));
        }
    return -1;
}
}  // namespace

TEST_CASE("histogram bucket labels print like the Prometheus clients, without exponents", "[unit]") {
    prom_histogram h;
    h.observe_us(70);
    std::string out;
    h.write(out, "x_seconds", "");
    CHECK(out.find("x_seconds_bucket{le=\"0.00005\"} 0\n") != std::string::npos);
    CHECK(out.find("x_seconds_bucket{le=\"0.0001\"} 1\n") != std::string::npos);
    CHECK(out.find("x_seconds_bucket{le=\"0.0005\"} 1\n") != std::string::npos);
    CHECK(out.find("x_seconds_bucket{le=\"10\"} 1\n") != std::string::npos);
    CHECK(out.find("x_seconds_bucket{le=\"+Inf\"} 1\n") != std::string::npos);
    CHECK(out.find("x_seconds_sum 0.00007\n") != std::string::npos);
    CHECK(out.find("e-0") == std::string::npos);
}

TEST_CASE("large sample values print without an exponent", "[unit]") {
    std::string out;
    write_sample(out, "x_total", "", 1e6);
    CHECK(out == "x_total 1000000\n");
}

TEST_CASE("proc stat parsing finds CPU, memory and start time after a command name with spaces and parentheses", "[unit]") {
    process_stats s;
    parse_proc_stat(stat_line, proc_units{100, 4096, 1'700'000'000.0}, s);
    CHECK(s.cpu_seconds == 4.0);
    CHECK(s.virtual_bytes == 123456789.0);
    CHECK(s.resident_bytes == 2000.0 * 4096);
    CHECK(s.start_time_seconds == 1'700'000'010.0);
}

TEST_CASE("proc stat parsing leaves every field empty on truncated text and the start time without a boot time", "[unit]") {
    process_stats truncated;
    parse_proc_stat("4242 (offerd) S 1 2 3", proc_units{}, truncated);
    CHECK_FALSE(truncated.cpu_seconds);
    CHECK_FALSE(truncated.resident_bytes);
    process_stats no_boot;
    parse_proc_stat(stat_line, proc_units{100, 4096, std::nullopt}, no_boot);
    CHECK(no_boot.cpu_seconds == 4.0);
    CHECK_FALSE(no_boot.start_time_seconds);
}

TEST_CASE("the boot time and the soft open-files limit are read from their lines, and unlimited is no limit", "[unit]") {
    CHECK(parse_boot_time("cpu 1 2\nbtime 1700000000\n") == 1'700'000'000.0);
    CHECK_FALSE(parse_boot_time("cpu 1 2\n"));
    CHECK(parse_max_open_files("Max cpu time unlimited unlimited seconds\nMax open files            1024   4096   files\n") == 1024.0);
    CHECK_FALSE(parse_max_open_files("Max open files            unlimited            unlimited            files\n"));
    CHECK_FALSE(parse_max_open_files(""));
}

TEST_CASE("process metrics are read from a proc directory and written as the standard process_* family", "[unit]") {
    const fake_proc proc;
    const process_stats s = read_process_stats(proc.root.string());
    CHECK(s.open_fds == 4.0);
    CHECK(s.max_fds == 1024.0);
    REQUIRE(s.cpu_seconds);
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    CHECK(*s.cpu_seconds == Approx(400 / ticks));
    CHECK(s.start_time_seconds == Approx(1'700'000'000.0 + 1000 / ticks));
    std::string out;
    write_process_metrics(out, s);
    CHECK(out.find("# TYPE process_cpu_seconds_total counter\n") != std::string::npos);
    CHECK(sample_value(out, "process_open_fds") == 4);
    CHECK(sample_value(out, "process_max_fds") == 1024);
    CHECK(sample_value(out, "process_virtual_memory_bytes") == 123456789);
    CHECK(sample_value(out, "process_resident_memory_bytes") == 2000.0 * static_cast<double>(::sysconf(_SC_PAGESIZE)));
    CHECK(out.find("e+") == std::string::npos);
}

TEST_CASE("an unreadable proc directory yields no process metrics rather than an error", "[unit]") {
    const process_stats s = read_process_stats("/nonexistent/proc");
    CHECK_FALSE(s.cpu_seconds);
    CHECK_FALSE(s.open_fds);
    CHECK_FALSE(s.max_fds);
    std::string out;
    write_process_metrics(out, s);
    CHECK(out.empty());
}

TEST_CASE("this process's own /proc gives every process metric", "[unit]") {
    const process_stats s = read_process_stats();
    REQUIRE(s.resident_bytes);
    CHECK(*s.resident_bytes > 0);
    REQUIRE(s.open_fds);
    CHECK(*s.open_fds >= 3);
    CHECK(s.cpu_seconds);
    CHECK(s.virtual_bytes);
    CHECK(s.start_time_seconds);
}

TEST_CASE("the server latency histogram is labelled by route template and status class, unknown paths as other", "[unit]") {
    router r;
    r.add(http::verb::get, "/member_data/{memberId}", [](request_context& ctx) -> asio::awaitable<response> {
        if (ctx.param == "missing") co_return detail_response(http::status::not_found, "no such member");
        co_return json_response(http::status::ok, "[]");
    });
    r.add(http::verb::post, "/boom", [](request_context&) -> asio::awaitable<response> {
        throw std::runtime_error("bug");
        co_return json_response(http::status::ok, "{}");
    });
    const auto call = [&](http::verb method, const std::string& target) {
        const request req{method, target, 11};
        return run_bounded([&]() -> asio::awaitable<unsigned> {
            request_context ctx{req, {}, "id", {}, {}};
            response res = co_await r.dispatch(ctx);
            co_return res.result_int();
        }());
    };
    REQUIRE(call(http::verb::get, "/member_data/M1") == 200);
    REQUIRE(call(http::verb::get, "/member_data/M2") == 200);
    REQUIRE(call(http::verb::get, "/member_data/missing") == 404);
    REQUIRE(call(http::verb::post, "/boom") == 500);
    REQUIRE(call(http::verb::get, "/no/such/M1") == 404);
    REQUIRE(call(http::verb::get, "/no/such/M2") == 404);
    std::string out;
    r.write_request_durations(out, "member-data");
    const std::string md = R"(listener="member-data",method="GET",route="/member_data/{memberId}",status_class=)";
    CHECK(sample_value(out, "offerd_http_server_request_duration_seconds_count{" + md + R"("2xx"})") == 2);
    CHECK(sample_value(out, "offerd_http_server_request_duration_seconds_count{" + md + R"("4xx"})") == 1);
    CHECK(sample_value(out, "offerd_http_server_request_duration_seconds_bucket{" + md + R"("2xx",le="+Inf"})") == 2);
    CHECK(sample_value(out, R"(offerd_http_server_request_duration_seconds_count{listener="member-data",method="POST",route="/boom",status_class="5xx"})") == 1);
    CHECK(sample_value(out, R"(offerd_http_server_request_duration_seconds_count{listener="member-data",method="any",route="other",status_class="4xx"})") == 2);
    CHECK(out.find("M1") == std::string::npos);  // never the raw path
    CHECK(out.find("/no/such") == std::string::npos);
    CHECK(out.find("status_class=\"3xx\"") == std::string::npos);  // only series with observations
}

TEST_CASE("a log line that cannot be buffered is dropped and counted", "[unit]") {
    const auto path = std::filesystem::temp_directory_path() / ("offerd-drop-" + std::to_string(::getpid()) + ".log");
    {
        logger log(log_config{path.string(), log_level::info});
        CHECK(log.dropped_lines() == 0);
        log.write(std::string(17 * 1024 * 1024, 'x'));  // over the 16 MiB of unbatched lines
        log.write(R"({"event":"small"})");
        CHECK(log.dropped_lines() == 1);
        log.flush();
    }
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(text.find(R"("event":"log_dropped","lines":1)") != std::string::npos);
    CHECK(text.find(R"({"event":"small"})") != std::string::npos);
    std::filesystem::remove(path);
}
