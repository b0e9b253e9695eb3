// Random (version 4) UUIDs, as Python's uuid.uuid4() writes them: Celery task ids and kombu
// delivery tags that modeld makes up.
#pragma once

#include <string>

namespace modeld::common {

// "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b": 122 random bits, lower-case hex. Thread-safe.
std::string RandomUuid();

}  // namespace modeld::common
