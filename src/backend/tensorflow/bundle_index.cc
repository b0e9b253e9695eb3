#include "backend/tensorflow/bundle_index.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "tensorflow/tensor_shape.pb.h"

namespace modeld::backend {
namespace {

using google::protobuf::internal::WireFormatLite;

// LevelDB's table format (table/format.h): the footer holds two block handles (varint64
// offset and size each) padded to 40 bytes, then the magic number; each block is followed by
// a compression-type byte and a CRC.
constexpr size_t kFooterSize = 48;
constexpr uint64_t kTableMagic = 0xdb4775248b80fb57ull;
constexpr size_t kBlockTrailerSize = 5;
constexpr char kNoCompression = 0;

absl::Status Corrupt(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("the checkpoint index is corrupt: ", what));
}

bool ReadVarint(absl::string_view& in, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift <= 63 && !in.empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

uint64_t ReadFixed(absl::string_view bytes, size_t size) {
  uint64_t value = 0;
  for (size_t i = 0; i < size; ++i)
    value |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  return value;
}

struct BlockHandle {
  uint64_t offset = 0;
  uint64_t size = 0;
};

bool ReadHandle(absl::string_view& in, BlockHandle& handle) {
  return ReadVarint(in, handle.offset) && ReadVarint(in, handle.size);
}

// The contents of the block at `handle`, which must be stored uncompressed.
absl::StatusOr<absl::string_view> Block(absl::string_view table, const BlockHandle& handle) {
  if (handle.offset > table.size() || handle.size > table.size() - handle.offset ||
      table.size() - handle.offset - handle.size < kBlockTrailerSize) {
    return Corrupt("a block lies past the end");
  }
  if (table[handle.offset + handle.size] != kNoCompression) {
    return Corrupt("a block is compressed");
  }
  return table.substr(handle.offset, handle.size);
}

// Every (key, value) of a block, in order: entries share a prefix with the key before them,
// and the block ends with its restart offsets and their count.
absl::StatusOr<std::vector<std::pair<std::string, absl::string_view>>> Entries(
    absl::string_view block) {
  if (block.size() < 4) return Corrupt("a block is too short");
  const uint64_t restarts = ReadFixed(block.substr(block.size() - 4), 4);
  if (restarts > (block.size() - 4) / 4) return Corrupt("a block's restart count is too large");
  absl::string_view in = block.substr(0, block.size() - 4 - 4 * restarts);
  std::vector<std::pair<std::string, absl::string_view>> entries;
  std::string key;
  while (!in.empty()) {
    uint64_t shared = 0, unshared = 0, value_size = 0;
    if (!ReadVarint(in, shared) || !ReadVarint(in, unshared) || !ReadVarint(in, value_size) ||
        shared > key.size() || unshared > in.size() || value_size > in.size() - unshared) {
      return Corrupt("a block entry is malformed");
    }
    key.resize(shared);
    key.append(in.data(), unshared);
    entries.emplace_back(key, in.substr(unshared, value_size));
    in.remove_prefix(unshared + value_size);
  }
  return entries;
}

// The dtype (field 1) and shape (field 2) of a serialized BundleEntryProto.
absl::StatusOr<BundleTensor> ParseEntry(const std::string& name, absl::string_view bytes) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  BundleTensor tensor;
  while (const uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const auto type = WireFormatLite::GetTagWireType(tag);
    bool ok = true;
    if (field == 1 && type == WireFormatLite::WIRETYPE_VARINT) {
      uint32_t dtype = 0;
      ok = in.ReadVarint32(&dtype);
      tensor.dtype = static_cast<tensorflow::DataType>(dtype);
    } else if (field == 2 && type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      std::string shape_bytes;
      uint32_t length = 0;
      tensorflow::TensorShapeProto shape;
      ok = in.ReadVarint32(&length) && in.ReadString(&shape_bytes, static_cast<int>(length)) &&
           shape.ParseFromString(shape_bytes);
      tensor.shape.clear();
      for (const auto& dim : shape.dim()) tensor.shape.push_back(dim.size());
    } else {
      ok = WireFormatLite::SkipField(&in, tag);
    }
    if (!ok) return Corrupt(absl::StrCat("the entry of '", name, "' does not parse"));
  }
  return tensor;
}

}  // namespace

absl::StatusOr<std::map<std::string, BundleTensor>> ReadBundleIndex(absl::string_view index) {
  if (index.size() < kFooterSize) return Corrupt("it is shorter than a table's footer");
  absl::string_view footer = index.substr(index.size() - kFooterSize);
  if (ReadFixed(footer.substr(kFooterSize - 8), 8) != kTableMagic) {
    return Corrupt("it is not a table (wrong magic number)");
  }
  BlockHandle metaindex, top;
  if (!ReadHandle(footer, metaindex) || !ReadHandle(footer, top)) {
    return Corrupt("its footer is malformed");
  }
  ASSIGN_OR_RETURN(const absl::string_view top_block, Block(index, top));
  ASSIGN_OR_RETURN(const auto data_blocks, Entries(top_block));
  std::map<std::string, BundleTensor> tensors;
  for (const auto& [unused, handle_bytes] : data_blocks) {
    absl::string_view in = handle_bytes;
    BlockHandle handle;
    if (!ReadHandle(in, handle)) return Corrupt("a block handle is malformed");
    ASSIGN_OR_RETURN(const absl::string_view block, Block(index, handle));
    ASSIGN_OR_RETURN(const auto entries, Entries(block));
    for (const auto& [name, value] : entries) {
      if (name.empty()) continue;  // the bundle's header
      ASSIGN_OR_RETURN(tensors[name], ParseEntry(name, value));
    }
  }
  return tensors;
}

}  // namespace modeld::backend
