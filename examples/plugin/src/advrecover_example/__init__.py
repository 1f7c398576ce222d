"""An advrecover plugin from outside its source tree: the defence ``bit_depth`` (registered through
the entry-point group ``advrecover.defences``) and the classifier ``SmallCNN`` (named in params by its
import path, ``victim.mode: module``)."""
