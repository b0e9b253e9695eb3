#include "batching/scheduler.h"

#include "batching/direct_scheduler.h"
#include "batching/dynamic_batcher.h"

namespace modeld::batching {

SchedulerFactory MakeSchedulerFactory(const common::Clock& clock) {
  return [&clock](
             std::shared_ptr<const core::ModelConfig> config, int64_t version,
             std::vector<std::unique_ptr<backend::Model>> instances,
             std::shared_ptr<const metrics::VersionMetrics> metrics) -> std::unique_ptr<Scheduler> {
    if (config->proto.has_dynamic_batching()) {
      return std::make_unique<DynamicBatcher>(std::move(config), version, std::move(instances),
                                              clock, std::move(metrics));
    }
    return std::make_unique<DirectScheduler>(std::move(config), version, std::move(instances),
                                             clock, std::move(metrics));
  };
}

}  // namespace modeld::batching
