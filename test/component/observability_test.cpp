// /metrics, /ready and trace context over real listeners; the Grafana dashboard against a real scrape.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include "json_schema.hpp"
#include "process.hpp"
#include "test_support.hpp"

using namespace offerd;
using namespace offerd::test;
namespace json = boost::json;

namespace {
// The value of the first sample whose line starts with `prefix`, or -1.
double sample(const std::string& text, const std::string& prefix) {
    std::size_t at = 0;
    while ((at = text.find(prefix, at)) != std::string::npos) {
        if (at == 0 || text[at - 1] == '\n') {
            const auto eol = text.find('\n', at);
            const auto line = text.substr(at, eol - at);
            return std::stod(line.substr(line.rfind(' ') + 1));
        }
        at += prefix.size();
    }
    return -1;
}

// The metric names a scrape declares (# TYPE lines), with a histogram's _bucket/_sum/_count.
// Checks on the way that the exposition is grouped: every sample belongs to the family of the
// TYPE line before it, and no family is declared twice.
std::set<std::string> exported_names(const std::string& text) {
    std::set<std::string> families, names;
    std::string family, type;
    std::size_t at = 0;
    while (at < text.size()) {
        const std::size_t eol = text.find('\n', at);
        const std::string line = text.substr(at, eol - at);
        at = eol == std::string::npos ? text.size() : eol + 1;
        if (line.starts_with("# TYPE ")) {
            const std::string rest = line.substr(7);
            family = rest.substr(0, rest.find(' '));
            type = rest.substr(rest.find(' ') + 1);
            INFO(family);
            CHECK(families.insert(family).second);
            names.insert(family);
            if (type == "histogram")
                for (const char* suffix : {"_bucket", "_sum", "_count"}) names.insert(family + suffix);
            continue;
        }
        if (line.empty() || line[0] == '#') continue;
        const std::string name = line.substr(0, line.find_first_of("{ "));
        INFO(line);
        CHECK(names.count(name) == 1);
        CHECK(name.starts_with(family));
    }
    return names;
}

// The metric names a PromQL expression selects: identifiers outside strings, label matchers,
// ranges and by/without/on/ignoring lists that are neither functions, aggregations nor keywords.
std::vector<std::string> promql_metrics(std::string_view e) {
    static const std::set<std::string, std::less<>> keywords{
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
        "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "inf", "nan"};
    std::vector<std::string> out;
    bool skip_list = false;  // the next (...) is a label list
    for (std::size_t i = 0; i < e.size();) {
        const char c = e[i];
        if (c == '"' || c == '\'') {
            for (++i; i < e.size() && e[i] != c; ++i)
                if (e[i] == '\\') ++i;
            ++i;
        } else if (c == '{' || c == '[' || (c == '(' && skip_list)) {
            const char close = c == '{' ? '}' : c == '[' ? ']' : ')';
            skip_list = false;
            while (i < e.size() && e[i] != close) {
                if (e[i] == '"') for (++i; i < e.size() && e[i] != '"'; ++i) if (e[i] == '\\') ++i;
                ++i;
            }
            ++i;
        } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':') {
            const std::size_t start = i;
            while (i < e.size() && (std::isalnum(static_cast<unsigned char>(e[i])) || e[i] == '_' || e[i] == ':')) ++i;
            const std::string word(e.substr(start, i - start));
            std::size_t next = i;
            while (next < e.size() && e[next] == ' ') ++next;
            if (word == "by" || word == "without" || word == "on" || word == "ignoring" || word == "group_left" || word == "group_right")
                skip_list = true;
            else if (!keywords.count(word) && (next >= e.size() || e[next] != '('))
                out.push_back(word);
        } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
            while (i < e.size() && (std::isalnum(static_cast<unsigned char>(e[i])) || e[i] == '.')) ++i;  // 0.99, 1e3, 5m
        } else {
            ++i;
        }
    }
    return out;
}

std::string read_text(const std::string& path) {
    REQUIRE(std::filesystem::is_regular_file(path));
    return read_file(path);
}
}  // namespace

TEST_CASE("every listener serves Prometheus metrics and the counters move with requests", "[component]") {
    test_app app(all_roles);
    const auto orch = app.port(role::orchestrator);
    const std::string ok_line = R"(offerd_http_requests_total{listener="orchestrator",method="POST",route="/member/offer",status="200"})";
    REQUIRE(post(orch, "/member/offer", txn_body("OBS1")).status == 200);
    auto first = get(app.port(role::prediction), "/metrics");
    REQUIRE(first.status == 200);
    CHECK(first.headers["Content-Type"].starts_with("text/plain"));
    CHECK(sample(first.body, ok_line) == 1);
    CHECK(sample(first.body, R"(offerd_offers_total{offer="35% Bonus"})") == 1);
    CHECK(sample(first.body, R"(offerd_pipeline_step_seconds_count{step="total"})") == 1);
    CHECK(sample(first.body, R"(offerd_upstream_call_seconds_count{service="prediction",outcome="ok"})") == 2);
    CHECK(sample(first.body, "offerd_member_data_transactions") == 1);
    CHECK(first.body.find("offerd_build_info{version=") != std::string::npos);
    REQUIRE(post(orch, "/member/offer", "not json").status == 400);
    REQUIRE(post(orch, "/member/offer", txn_body("OBS1")).status == 200);
    auto second = get(app.port(role::member_data), "/metrics");
    CHECK(sample(second.body, ok_line) == 2);
    CHECK(sample(second.body, R"(offerd_http_requests_total{listener="orchestrator",method="POST",route="/member/offer",status="400"})") == 1);
    CHECK(sample(second.body, R"(offerd_upstream_connections{service="member-data",state="idle"})") >= 1);
}

TEST_CASE("a valid traceparent's trace is propagated upstream, and the offer event names its span, the caller's, the service and the instance", "[component]") {
    fake_upstream md([](const request& r) {
        return r.method() == http::verb::get ? detail_response(http::status::not_found, "Member not found")
                                             : json_response(http::status::ok, "{}");
    });
    test_app app(all_roles & ~static_cast<std::uint8_t>(role::member_data), [&](app_config& c) {
        c.orchestrator.member_data_url = md.url();
        c.log.instance = "replica-7";
    });
    const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    REQUIRE(post(app.port(role::orchestrator), "/member/offer", txn_body("OBS2"), {{"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}}).status == 200);
    std::string span;
    std::size_t offers = 0;
    for (const auto& line : app.log_lines()) {
        auto v = json::parse(line).as_object();
        if (v.at("event") != "offer") continue;
        ++offers;
        CHECK(v.at("trace_id") == json::string_view(trace));
        CHECK(v.at("parent_span_id") == "00f067aa0ba902b7");
        CHECK(v.at("service") == "orchestrator");
        CHECK(v.at("instance") == "replica-7");
        span = std::string(v.at("span_id").as_string());
    }
    REQUIRE(offers == 1);
    REQUIRE(span.size() == 16);
    CHECK(span != "00f067aa0ba902b7");  // its own span, not the caller's
    REQUIRE_FALSE(md.requests().empty());
    for (const auto& r : md.requests()) {
        const std::string tp(r["traceparent"]);
        CHECK(tp == "00-" + trace + "-" + span + "-01");  // member-data's span is a child of the offer's
    }
}

TEST_CASE("a request without a traceparent starts a trace: the offer event has a span and no parent", "[component]") {
    test_app app;
    REQUIRE(post(app.port(role::orchestrator), "/member/offer", txn_body("OBS3")).status == 200);
    std::size_t offers = 0;
    for (const auto& line : app.log_lines()) {
        auto v = json::parse(line).as_object();
        if (v.at("event") != "offer") continue;
        ++offers;
        CHECK(v.at("span_id").as_string().size() == 16);
        CHECK_FALSE(v.contains("parent_span_id"));
        CHECK(v.at("service") == "orchestrator");
        CHECK_FALSE(v.at("instance").as_string().empty());  // HOSTNAME:PID by default
    }
    CHECK(offers == 1);
}

TEST_CASE("an invalid traceparent starts a new trace", "[component]") {
    CHECK(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").trace_id != std::string(32, '0'));
    CHECK(parse_traceparent("garbage").trace_id.size() == 32);
    CHECK(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").flags == "00");
}

TEST_CASE("ready answers 200 when every upstream is healthy and 503 naming the one that is down", "[component]") {
    const auto dead = closed_port();
    test_app healthy(all_roles, [](app_config& c) { c.ready_interval = std::chrono::milliseconds(50); });
    test_app degraded(all_roles & ~static_cast<std::uint8_t>(role::offer_engine), [&](app_config& c) {
        c.ready_interval = std::chrono::milliseconds(50);
        c.orchestrator.offer_engine_url = "http://127.0.0.1:" + std::to_string(dead);
    });
    // The first probe round runs at start; poll briefly for it (bounded).
    http_result ok;
    for (int i = 0; i < 100 && ok.status != 200; ++i) {
        ok = get(healthy.port(role::orchestrator), "/ready");
        if (ok.status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(ok.status == 200);
    auto bad = get(degraded.port(role::orchestrator), "/ready");
    CHECK(bad.status == 503);
    CHECK(json::parse(bad.body).at("upstreams").at("offer-engine") == "down");
}

TEST_CASE("the server latency histogram on a real listener is labelled by route template and status class", "[component]") {
    test_app app(all_roles);
    const auto md = app.port(role::member_data), orch = app.port(role::orchestrator);
    REQUIRE(get(md, "/member_data/HIST1").status == 404);
    REQUIRE(post(orch, "/member/offer", txn_body("HIST1")).status == 200);
    REQUIRE(post(orch, "/member/offer", "not json").status == 400);
    REQUIRE(get(orch, "/no/such/path").status == 404);
    const auto m = get(orch, "/metrics");
    REQUIRE(m.status == 200);
    const std::string h = "offerd_http_server_request_duration_seconds";
    CHECK(m.body.find("# TYPE " + h + " histogram\n") != std::string::npos);
    CHECK(sample(m.body, h + R"(_count{listener="orchestrator",method="POST",route="/member/offer",status_class="2xx"})") == 1);
    CHECK(sample(m.body, h + R"(_count{listener="orchestrator",method="POST",route="/member/offer",status_class="4xx"})") == 1);
    CHECK(sample(m.body, h + R"(_bucket{listener="orchestrator",method="POST",route="/member/offer",status_class="2xx",le="+Inf"})") == 1);
    CHECK(sample(m.body, h + R"(_count{listener="orchestrator",method="any",route="other",status_class="4xx"})") == 1);
    // The orchestrator's own read of HIST1's history went to member-data's listener too.
    CHECK(sample(m.body, h + R"(_count{listener="member-data",method="GET",route="/member_data/{memberId}",status_class="4xx"})") == 2);
    CHECK(m.body.find("HIST1") == std::string::npos);
    CHECK(m.body.find("/no/such/path") == std::string::npos);
}

TEST_CASE("a scrape carries the process family, one circuit state series per state and the new counters", "[component]") {
    test_app app(all_roles);
    const auto body = get(app.port(role::offer_engine), "/metrics").body;
    for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                             "process_open_fds", "process_max_fds", "process_start_time_seconds"}) {
        INFO(name);
        CHECK(sample(body, std::string(name) + " ") >= 0);
    }
    CHECK(sample(body, "process_resident_memory_bytes ") > 0);
    CHECK(sample(body, R"(offerd_circuit_state{service="prediction",state="closed"})") == 1);
    CHECK(sample(body, R"(offerd_circuit_state{service="prediction",state="open"})") == 0);
    CHECK(sample(body, R"(offerd_circuit_state{service="prediction",state="half_open"})") == 0);
    CHECK(body.find("offerd_circuit_state{service=\"prediction\"} ") == std::string::npos);  // the old numeric gauge
    CHECK(sample(body, R"(offerd_upstream_retries_total{service="member-data"})") == 0);
    CHECK(sample(body, "offerd_log_dropped_lines_total ") == 0);
    CHECK(sample(body, "offerd_admission_shed_total ") == 0);
    exported_names(body);  // grouped, each family declared once
}

TEST_CASE("a replayed offer counts as a replay and not as an offer", "[component]") {
    test_app app(all_roles);
    const auto orch = app.port(role::orchestrator);
    REQUIRE(post(orch, "/member/offer", txn_body("REPLAY1"), {{"Idempotency-Key", "k-replay-1"}}).status == 200);
    auto again = post(orch, "/member/offer", txn_body("REPLAY1"), {{"Idempotency-Key", "k-replay-1"}});
    REQUIRE(again.status == 200);
    REQUIRE(again.headers["Idempotent-Replayed"] == "true");
    const auto body = get(orch, "/metrics").body;
    CHECK(sample(body, R"(offerd_offers_total{offer="35% Bonus"})") + sample(body, R"(offerd_offers_total{offer="50% Discount"})") +
              sample(body, R"(offerd_offers_total{offer="other"})") == 1);
    CHECK(sample(body, "offerd_offer_replays_total ") == 1);
}

TEST_CASE("every expression of the Grafana dashboard names metrics a running offerd exports", "[component]") {
    test_app app(all_roles);
    REQUIRE(post(app.port(role::orchestrator), "/member/offer", txn_body("DASH1")).status == 200);
    const auto scrape = get(app.port(role::orchestrator), "/metrics");
    REQUIRE(scrape.status == 200);
    const std::set<std::string> exported = exported_names(scrape.body);
    const auto dashboard = json::parse(read_text(std::string(OFFERD_SOURCE_DIR) + "/deploy/grafana-dashboard.json")).as_object();
    std::size_t expressions = 0;
    std::set<std::string> used;
    const auto check_expr = [&](std::string_view expr) {
        ++expressions;
        INFO(expr);
        const auto names = promql_metrics(expr);
        CHECK_FALSE(names.empty());
        for (const auto& n : names) {
            INFO(n);
            CHECK(exported.count(n) == 1);
            used.insert(n);
        }
    };
    for (const auto& panel : dashboard.at("panels").as_array())
        for (const auto& target : panel.as_object().at("targets").as_array()) check_expr(target.as_object().at("expr").as_string());
    for (const auto& var : dashboard.at("templating").as_object().at("list").as_array())
        if (var.as_object().at("type") == "query") {
            const std::string_view q = var.as_object().at("query").as_string();  // label_values(METRIC, label)
            REQUIRE(q.starts_with("label_values("));
            check_expr(q.substr(13, q.find(',') - 13));
        }
    CHECK(expressions >= 20);
    // The dashboard is built on the new families.
    for (const char* n : {"offerd_http_server_request_duration_seconds_bucket", "offerd_upstream_retries_total", "offerd_circuit_state",
                          "process_cpu_seconds_total", "process_resident_memory_bytes", "offerd_outbox_pending"}) {
        INFO(n);
        CHECK(used.count(n) == 1);
    }
}

TEST_CASE("the dashboard's PromQL reader finds metric names and skips functions, labels and ranges", "[unit]") {
    CHECK(promql_metrics(R"q(histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{x="y(z)",w=~"$v"}[$__rate_interval]))))q") ==
          std::vector<std::string>{"a_bucket"});
    CHECK(promql_metrics("sum(rate(a_total[5m])) / sum without (k) (b)") == std::vector<std::string>{"a_total", "b"});
    CHECK(promql_metrics(R"(max by (service, state) (c{state!="closed"}) > bool 0)") == std::vector<std::string>{"c"});
}

namespace {
// Every problem of every line of `lines` against the log schema, as "line N (event): problem".
std::vector<std::string> log_schema_problems(const std::vector<std::string>& lines, const json::value& schema,
                                             std::set<std::string>& events_seen) {
    std::vector<std::string> out;
    const json::object& defs = schema.at("$defs").as_object();
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const json::value v = json::parse(lines[i]);
        const std::string event(v.at("event").as_string());
        events_seen.insert(event);
        if (schema_violations(v, schema, schema).empty()) continue;
        // The root's anyOf says only "fits none": say why against the event's own schema.
        const auto own = defs.find(event);
        const auto why = own == defs.end() ? std::vector<std::string>{"no schema for this event"}
                                           : schema_violations(v, own->value(), schema);
        out.push_back("line " + std::to_string(i + 1) + " (" + event + "): " + (why.empty() ? "fits its own schema, not the root" : why.front()));
    }
    return out;
}
}  // namespace

TEST_CASE("every log line of real traffic fits docs/log-schema.json, one type per column", "[component]") {
    const json::value schema = json::parse(read_text(std::string(OFFERD_SOURCE_DIR) + "/docs/log-schema.json"));
    REQUIRE(schema_defects(schema, schema).empty());
    std::vector<std::string> lines;
    {
        test_app app(all_roles, [](app_config& c) { c.throughput_interval = std::chrono::milliseconds(50); });
        const auto port = app.port(role::orchestrator);
        for (int i = 0; i < 12; ++i) CHECK(post(port, "/member/offer", txn_body("LS" + std::to_string(i % 4))).status == 200);
        for (int i = 0; i < 2; ++i) CHECK(post(port, "/member/offer", txn_body("LSK"), {{"Idempotency-Key", "log-schema-1"}}).status == 200);
        CHECK(post(port, "/member/offer", R"({"memberId": 7})").status == 422);
        CHECK(post(port, "/member/offer", "{").status == 400);
        std::this_thread::sleep_for(std::chrono::milliseconds(150));  // a few throughput windows
        lines = app.log_lines();
    }
    {
        // A refusing prediction service: failed offers (nulls where steps did not run),
        // upstream errors and the breaker's transitions.
        test_app app(all_roles & ~static_cast<std::uint8_t>(role::prediction), [](app_config& c) {
            c.orchestrator.prediction_url = "http://127.0.0.1:" + std::to_string(closed_port());
        });
        for (int i = 0; i < 25; ++i) post(app.port(role::orchestrator), "/member/offer", txn_body("LSF" + std::to_string(i)));
        const auto more = app.log_lines();
        lines.insert(lines.end(), more.begin(), more.end());
    }
    std::set<std::string> seen;
    const auto problems = log_schema_problems(lines, schema, seen);
    for (const auto& p : problems) UNSCOPED_INFO(p);
    CHECK(problems.empty());
    for (const char* e : {"listening", "offer", "offer_replayed", "rejected", "throughput", "upstream_error"}) {
        INFO(e);
        CHECK(seen.count(e) == 1);
    }

    // The schema does reject what a loader would choke on: a retyped column, the throughput
    // event's old `latency_us` name, an event it does not list.
    std::set<std::string> ignored;
    const auto offer_line = std::find_if(lines.begin(), lines.end(), [](const std::string& l) { return l.find(R"("event":"offer")") != std::string::npos; });
    REQUIRE(offer_line != lines.end());
    json::value retyped = json::parse(*offer_line);
    retyped.at("latency_us").as_object()["total"] = "12";
    CHECK(log_schema_problems({json::serialize(retyped)}, schema, ignored).size() == 1);
    CHECK(log_schema_problems({R"({"ts":"2026-01-01T00:00:00.000000Z","level":"info","event":"throughput","window_s":1,"count":0,"ok":0,"errors":0,"req_per_s":0,"in_flight":0,"latency_us":{}})"},
                              schema, ignored).size() == 1);
    CHECK(log_schema_problems({R"({"ts":"2026-01-01T00:00:00.000000Z","level":"info","event":"no_such_event"})"}, schema, ignored).size() == 1);
}
