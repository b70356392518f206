"""Input-size rules of the architectures in this package, without torch: the experts
describe a network (size multiple, tile overlap) before anything loads it, and the bundled ONNX
exports run on onnxruntime alone (torch is the optional ``restora[torch]`` runtime)."""

#: FFDNet: input H and W must be multiples of this (one pixel-unshuffle by 2).
FFDNET_SIZE_MULTIPLE = 2
#: FFDNet: pixels of context (input resolution) that influence an output pixel, each side.
FFDNET_RECEPTIVE_RADIUS = 24
#: DnCNN: pixels of context that influence an output pixel, each side (20 3x3 convolutions).
DNCNN_RECEPTIVE_RADIUS = 20
#: IAT: pixels each side that influence the local branch's output at a pixel: the first 3x3
#: convolution, three blocks of (3x3 + 5x5 depthwise) and the last 3x3 convolution.
IAT_LOCAL_RADIUS = 1 + 3 * (1 + 2) + 1
#: SAFMN: sides are padded to a multiple of this, so the 1/16 pooling level sees whole cells.
SAFMN_SIZE_MULTIPLE = 16
#: SAFMN: context pixels per tile side (input resolution). Eight blocks with a 3x3 convolution at
#: 1/16 resolution reach far; see the tests for how close tiles come to one pass.
SAFMN_TILE_OVERLAP = 48
#: SAFMN: output size / input size.
SAFMN_SCALE = 4
