"""Input-size rules of the published architectures in this package, without torch: the experts
describe a network (size multiple, tile overlap) before anything loads it, and the bundled ONNX
exports run on onnxruntime alone (torch is the optional ``restora[torch]`` runtime)."""

#: FFDNet: input H and W must be multiples of this (one pixel-unshuffle by 2).
FFDNET_SIZE_MULTIPLE = 2
#: FFDNet: pixels of context (input resolution) that influence an output pixel, each side.
FFDNET_RECEPTIVE_RADIUS = 24
#: DnCNN: pixels of context that influence an output pixel, each side (20 3x3 convolutions).
DNCNN_RECEPTIVE_RADIUS = 20
