// Outbox storage: an in-memory FIFO mirrored to an append-only, checksummed file.
#include "offerd/orchestrator/outbox.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/crc.hpp>
#include <boost/json/parse.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "offerd/codec/json_writer.hpp"
#include "offerd/codec/wire.hpp"

namespace offerd {

namespace {

std::uint32_t crc32(std::string_view s) {
    boost::crc_32_type crc;
    crc.process_bytes(s.data(), s.size());
    return crc.checksum();
}

std::string record_json(const std::string& key, const transaction& t) {
    std::string out;
    json_writer w(out);
    w.begin_object().member("key", std::string_view(key)).key("txn").raw(encode_transaction(t)).end_object();
    return out;
}

// {"key": "...", "txn": {...}} -> item. The transaction goes through the wire codec (exact
// numbers, validation); the key, written first, through Boost.JSON.
std::optional<outbox::item> parse_record(std::uint64_t seq, std::string_view json_text) {
    constexpr std::string_view txn_tag = ",\"txn\":";
    const auto txn_at = json_text.rfind(txn_tag);
    if (txn_at == std::string_view::npos || !json_text.ends_with('}')) return std::nullopt;
    boost::json::error_code ec;
    const auto head = boost::json::parse(std::string(json_text.substr(0, txn_at)) + "}", ec);
    const auto* key = ec || !head.is_object() ? nullptr : head.as_object().if_contains("key");
    if (!key || !key->is_string()) return std::nullopt;
    const auto body = json_text.substr(txn_at + txn_tag.size(), json_text.size() - txn_at - txn_tag.size() - 1);
    auto t = decode_transaction(body);
    if (!t) return std::nullopt;
    return outbox::item{seq, std::string(key->as_string()), std::move(t).value()};
}

}  // namespace

outbox::outbox(const outbox_config& cfg) : cfg_(cfg) {
    if (cfg_.dir.empty()) return;
    if (::mkdir(cfg_.dir.c_str(), 0755) != 0 && errno != EEXIST)
        throw std::runtime_error("cannot create data directory '" + cfg_.dir + "': " + std::strerror(errno));
    const std::string path = cfg_.dir + "/outbox.log";
    {
        std::ifstream in(path);
        std::deque<item> replayed;
        for (std::string line; std::getline(in, line);) {
            std::istringstream fields(line);
            std::string tag;
            std::uint64_t seq = 0;
            fields >> tag >> seq;
            if (tag == "A") {
                std::erase_if(replayed, [&](const item& i) { return i.seq == seq; });
                continue;
            }
            std::string crc_hex;
            fields >> crc_hex;
            const auto json_at = line.find('{');
            if (tag != "P" || json_at == std::string::npos) break;  // torn write: stop here
            const std::string_view json_text = std::string_view(line).substr(json_at);
            if (crc_hex != std::to_string(crc32(json_text))) break;
            auto it = parse_record(seq, json_text);
            if (!it) break;
            replayed.push_back(std::move(*it));
            next_seq_ = std::max(next_seq_, seq + 1);
        }
        items_ = std::move(replayed);
    }
    // Rewrite the file with just what is still pending (compaction), then append from there.
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        for (const item& i : items_) {
            const std::string json_text = record_json(i.key, i.txn);
            out << "P " << i.seq << ' ' << crc32(json_text) << ' ' << json_text << '\n';
        }
        if (!out.flush()) throw std::runtime_error("cannot write '" + tmp + "'");
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        throw std::runtime_error("cannot replace '" + path + "': " + std::strerror(errno));
    fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("cannot open '" + path + "': " + std::strerror(errno));
    count_.store(items_.size());
}

outbox::~outbox() {
    if (fd_ >= 0) ::close(fd_);
}

void outbox::append_line(const std::string& line) {
    if (fd_ < 0) return;
    std::size_t done = 0;
    while (done < line.size()) {
        const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw std::runtime_error(std::string("outbox write failed: ") + std::strerror(errno));
        done += static_cast<std::size_t>(n);
    }
    if (cfg_.fsync && ::fdatasync(fd_) != 0) throw std::runtime_error(std::string("outbox fsync failed: ") + std::strerror(errno));
}

bool outbox::has_pending(std::string_view member) const {
    if (count_.load(std::memory_order_acquire) == 0) return false;
    std::lock_guard lock(mutex_);
    return std::any_of(items_.begin(), items_.end(), [&](const item& i) { return i.txn.member_id == member; });
}

std::vector<transaction> outbox::pending_for(std::string_view member) const {
    std::vector<transaction> out;
    if (count_.load(std::memory_order_acquire) == 0) return out;
    std::lock_guard lock(mutex_);
    for (const item& i : items_)
        if (i.txn.member_id == member) out.push_back(i.txn);
    return out;
}

result<std::uint64_t> outbox::add(std::string key, const transaction& t) {
    std::lock_guard lock(mutex_);
    const std::uint64_t seq = next_seq_++;
    try {
        const std::string json_text = record_json(key, t);
        append_line("P " + std::to_string(seq) + ' ' + std::to_string(crc32(json_text)) + ' ' + json_text + '\n');
    } catch (const std::exception& e) {
        return fail(errc::internal, e.what());
    }
    items_.push_back(item{seq, std::move(key), t});
    count_.store(items_.size(), std::memory_order_release);
    return seq;
}

std::optional<outbox::item> outbox::front() const {
    std::lock_guard lock(mutex_);
    if (items_.empty()) return std::nullopt;
    return items_.front();
}

void outbox::acknowledge(std::uint64_t seq) {
    std::lock_guard lock(mutex_);
    std::erase_if(items_, [&](const item& i) { return i.seq == seq; });
    count_.store(items_.size(), std::memory_order_release);
    if (fd_ < 0) return;
    try {
        if (items_.empty()) {
            if (::ftruncate(fd_, 0) != 0) throw std::runtime_error(std::strerror(errno));
        } else {
            append_line("A " + std::to_string(seq) + '\n');
        }
    } catch (const std::exception&) {
        // The item was delivered; a stale record only means a de-duplicated redelivery after a restart.
    }
}

std::size_t outbox::size() const { return count_.load(); }

std::vector<outbox::item> outbox::snapshot() const {
    std::lock_guard lock(mutex_);
    return {items_.begin(), items_.end()};
}

}  // namespace offerd
