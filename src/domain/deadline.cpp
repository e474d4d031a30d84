// Deadline arithmetic.
#include "offerd/domain/deadline.hpp"

#include <algorithm>

namespace offerd {

deadline::clock::duration deadline::remaining(clock::time_point now) const noexcept {
    if (at_ == clock::time_point::max()) return clock::duration::max();
    return std::max(clock::duration::zero(), at_ - now);
}

deadline::clock::duration deadline::budget(clock::duration per_call, clock::time_point now) const noexcept {
    return std::max(clock::duration::zero(), std::min(per_call, remaining(now)));
}

}  // namespace offerd
