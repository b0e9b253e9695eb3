#include "transport/grpc_listener.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace modeld::transport {
namespace {

using ::testing::HasSubstr;

// Answers every call OK at once, without reading it.
class AnswerAll final : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Reactor final : public grpc::ServerGenericBidiReactor {
     public:
      Reactor() { Finish(grpc::Status::OK); }
      void OnDone() override { delete this; }
    };
    return new Reactor;
  }
};

class GrpcListenerTest : public ::testing::Test {
 protected:
  void Start(int64_t max_connections) {
    absl::StatusOr<std::unique_ptr<GrpcListener>> listener = GrpcListener::Bind(
        {.address = "127.0.0.1:0", .max_connections = max_connections, .registry = &registry_});
    ASSERT_TRUE(listener.ok()) << listener.status();
    listener_ = *std::move(listener);
    grpc::ServerBuilder builder;
    builder.RegisterCallbackGenericService(&service_);
    auto acceptor = builder.experimental().AddExternalConnectionAcceptor(
        grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
        grpc::InsecureServerCredentials());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    listener_->Start(std::move(acceptor));
  }

  void TearDown() override {
    if (listener_ != nullptr) listener_->Stop();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  // A channel of its own (its own TCP connection).
  std::shared_ptr<grpc::Channel> Channel() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("modeld.test.channel", ++channels_);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", listener_->port()),
                                     grpc::InsecureChannelCredentials(), args);
  }

  static grpc::Status Call(const std::shared_ptr<grpc::Channel>& channel) {
    grpc::GenericStub stub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice byte("x", 1);
    grpc::ByteBuffer request(&byte, 1), response;
    grpc::Status status;
    absl::Notification done;
    stub.UnaryCall(&context, "/test.Service/Method", grpc::StubOptions(), &request, &response,
                   [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    return status;
  }

  bool WaitForOpen(int64_t count) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (listener_->open_connections() != count) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return true;
  }

  metrics::Registry registry_;
  AnswerAll service_;
  std::unique_ptr<GrpcListener> listener_;
  std::unique_ptr<grpc::Server> server_;
  int channels_ = 0;
};

TEST_F(GrpcListenerTest, ServesUpToTheLimitRefusesOneMoreNamingTheFlagAndCountsItsEnd) {
  Start(2);
  std::vector<std::shared_ptr<grpc::Channel>> admitted = {Channel(), Channel()};
  for (const auto& channel : admitted) ASSERT_TRUE(Call(channel).ok());
  EXPECT_EQ(listener_->open_connections(), 2);

  const grpc::Status refused = Call(Channel());
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_THAT(registry_.Render(),
              HasSubstr("modeld_connections_rejected_total{transport=\"grpc\"} "));
  EXPECT_EQ(listener_->open_connections(), 2);
  for (const auto& channel : admitted) EXPECT_TRUE(Call(channel).ok());  // still served

  admitted.pop_back();  // its connection closes
  ASSERT_TRUE(WaitForOpen(1));
  // Room again; the channel is kept, or its connection could end before the count is read.
  std::shared_ptr<grpc::Channel> fresh = Channel();
  EXPECT_TRUE(Call(fresh).ok());
  EXPECT_TRUE(WaitForOpen(2));
}

TEST_F(GrpcListenerTest, ZeroMeansNoLimit) {
  Start(0);
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < 8; ++i) {
    channels.push_back(Channel());
    ASSERT_TRUE(Call(channels.back()).ok());
  }
  EXPECT_EQ(listener_->open_connections(), 8);
}

TEST(GrpcListenerBindTest, AnAddressInUseOrMalformedIsUnavailableNamingIt) {
  absl::StatusOr<std::unique_ptr<GrpcListener>> first = GrpcListener::Bind({.address = "127.0.0.1:0"});
  ASSERT_TRUE(first.ok());
  const std::string taken = absl::StrCat("127.0.0.1:", (*first)->port());
  absl::StatusOr<std::unique_ptr<GrpcListener>> second = GrpcListener::Bind({.address = taken});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(taken));
  EXPECT_FALSE(GrpcListener::Bind({.address = "no-port"}).ok());
  absl::StatusOr<std::unique_ptr<GrpcListener>> v6 = GrpcListener::Bind({.address = "[::1]:0"});
  if (v6.ok()) {
    EXPECT_GT((*v6)->port(), 0);  // where the machine has IPv6
  }
}

}  // namespace
}  // namespace modeld::transport
