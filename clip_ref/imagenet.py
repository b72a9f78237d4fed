"""ImageNet zero-shot metadata: the 1000 curated class names and the prompt templates (paper §3.1.4).

These are published data, not code: the class names and the 80 templates are the ones OpenAI released
with its prompt-engineering notebook for ImageNet (``Prompt_Engineering_for_ImageNet.ipynb``), which
open_clip also ships in ``open_clip.zero_shot_metadata``. The tests compare every entry with open_clip's
copy, so a typo here cannot go unnoticed.

* ``IMAGENET_CLASSNAMES``: one readable name per class, in the order of the standard class indices
  0..999 (the order of the sorted WordNet ids ``n01440764`` .. ``n15075141``). OpenAI rewrote many
  WordNet lemmas into names a caption would use ("tench", "kite (bird of prey)"). Two names occur
  twice, as in the published list: "missile" (classes 657 and 744) and "sunglasses" (836 and 837).
  That is harmless for zero-shot classification: the two columns of the classifier are identical, and
  ``argmax`` picks the lower index.
* ``IMAGENET_TEMPLATES``: the 80 templates of the ensemble, each with exactly one ``{}`` for the name.
* ``IMAGENET_TEMPLATES_7``: the 7 templates OpenAI's notebook reports finding by forward selection over
  the 80. Every one is a member of the 80 (including the trailing full stop).
* ``TEMPLATE_SETS``: the template sets the book compares, by short name: ``"name"`` (the bare class
  name), ``"1"`` (the paper's default prompt, "A photo of a {label}."), ``"7"`` and ``"80"``.

They are tuples, so nobody mutates the package's copy by accident. The comment at the end of each line
of class names is the class index of the first name on that line.
"""

from __future__ import annotations

__all__ = ["IMAGENET_CLASSNAMES", "IMAGENET_TEMPLATES", "IMAGENET_TEMPLATES_7", "TEMPLATE_SETS"]

IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

IMAGENET_TEMPLATES_7: tuple[str, ...] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "name": ("{}",),
    "1": ("a photo of a {}.",),
    "7": IMAGENET_TEMPLATES_7,
    "80": IMAGENET_TEMPLATES,
}

IMAGENET_CLASSNAMES: tuple[str, ...] = (
    "tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark", "electric ray",     # 0
    "stingray", "rooster", "hen", "ostrich", "brambling", "goldfinch", "house finch", "junco",       # 6
    "indigo bunting", "American robin", "bulbul", "jay", "magpie", "chickadee", "American dipper",   # 14
    "kite (bird of prey)", "bald eagle", "vulture", "great grey owl", "fire salamander",             # 21
    "smooth newt", "newt", "spotted salamander", "axolotl", "American bullfrog", "tree frog",        # 26
    "tailed frog", "loggerhead sea turtle", "leatherback sea turtle", "mud turtle", "terrapin",      # 32
    "box turtle", "banded gecko", "green iguana", "Carolina anole",                                  # 37
    "desert grassland whiptail lizard", "agama", "frilled-necked lizard", "alligator lizard",        # 41
    "Gila monster", "European green lizard", "chameleon", "Komodo dragon", "Nile crocodile",         # 45
    "American alligator", "triceratops", "worm snake", "ring-necked snake",                          # 50
    "eastern hog-nosed snake", "smooth green snake", "kingsnake", "garter snake", "water snake",     # 54
    "vine snake", "night snake", "boa constrictor", "African rock python", "Indian cobra",           # 59
    "green mamba", "sea snake", "Saharan horned viper", "eastern diamondback rattlesnake",           # 64
    "sidewinder rattlesnake", "trilobite", "harvestman", "scorpion", "yellow garden spider",         # 68
    "barn spider", "European garden spider", "southern black widow", "tarantula", "wolf spider",     # 73
    "tick", "centipede", "black grouse", "ptarmigan", "ruffed grouse", "prairie grouse", "peafowl",  # 78
    "quail", "partridge", "african grey parrot", "macaw", "sulphur-crested cockatoo", "lorikeet",    # 85
    "coucal", "bee eater", "hornbill", "hummingbird", "jacamar", "toucan", "duck",                   # 91
    "red-breasted merganser", "goose", "black swan", "tusker", "echidna", "platypus", "wallaby",     # 98
    "koala", "wombat", "jellyfish", "sea anemone", "brain coral", "flatworm", "nematode", "conch",   # 105
    "snail", "slug", "sea slug", "chiton", "chambered nautilus", "Dungeness crab", "rock crab",      # 113
    "fiddler crab", "red king crab", "American lobster", "spiny lobster", "crayfish", "hermit crab", # 120
    "isopod", "white stork", "black stork", "spoonbill", "flamingo", "little blue heron",            # 126
    "great egret", "bittern bird", "crane bird", "limpkin", "common gallinule", "American coot",     # 132
    "bustard", "ruddy turnstone", "dunlin", "common redshank", "dowitcher", "oystercatcher",         # 138
    "pelican", "king penguin", "albatross", "grey whale", "killer whale", "dugong", "sea lion",      # 144
    "Chihuahua", "Japanese Chin", "Maltese", "Pekingese", "Shih Tzu", "King Charles Spaniel",        # 151
    "Papillon", "toy terrier", "Rhodesian Ridgeback", "Afghan Hound", "Basset Hound", "Beagle",      # 157
    "Bloodhound", "Bluetick Coonhound", "Black and Tan Coonhound", "Treeing Walker Coonhound",       # 163
    "English foxhound", "Redbone Coonhound", "borzoi", "Irish Wolfhound", "Italian Greyhound",       # 167
    "Whippet", "Ibizan Hound", "Norwegian Elkhound", "Otterhound", "Saluki", "Scottish Deerhound",   # 172
    "Weimaraner", "Staffordshire Bull Terrier", "American Staffordshire Terrier",                    # 178
    "Bedlington Terrier", "Border Terrier", "Kerry Blue Terrier", "Irish Terrier",                   # 181
    "Norfolk Terrier", "Norwich Terrier", "Yorkshire Terrier", "Wire Fox Terrier",                   # 185
    "Lakeland Terrier", "Sealyham Terrier", "Airedale Terrier", "Cairn Terrier",                     # 189
    "Australian Terrier", "Dandie Dinmont Terrier", "Boston Terrier", "Miniature Schnauzer",         # 193
    "Giant Schnauzer", "Standard Schnauzer", "Scottish Terrier", "Tibetan Terrier",                  # 197
    "Australian Silky Terrier", "Soft-coated Wheaten Terrier", "West Highland White Terrier",        # 201
    "Lhasa Apso", "Flat-Coated Retriever", "Curly-coated Retriever", "Golden Retriever",             # 204
    "Labrador Retriever", "Chesapeake Bay Retriever", "German Shorthaired Pointer", "Vizsla",        # 208
    "English Setter", "Irish Setter", "Gordon Setter", "Brittany dog", "Clumber Spaniel",            # 212
    "English Springer Spaniel", "Welsh Springer Spaniel", "Cocker Spaniel", "Sussex Spaniel",        # 217
    "Irish Water Spaniel", "Kuvasz", "Schipperke", "Groenendael dog", "Malinois", "Briard",          # 221
    "Australian Kelpie", "Komondor", "Old English Sheepdog", "Shetland Sheepdog", "collie",          # 227
    "Border Collie", "Bouvier des Flandres dog", "Rottweiler", "German Shepherd Dog", "Dobermann",   # 232
    "Miniature Pinscher", "Greater Swiss Mountain Dog", "Bernese Mountain Dog",                      # 237
    "Appenzeller Sennenhund", "Entlebucher Sennenhund", "Boxer", "Bullmastiff", "Tibetan Mastiff",   # 240
    "French Bulldog", "Great Dane", "St. Bernard", "husky", "Alaskan Malamute", "Siberian Husky",    # 245
    "Dalmatian", "Affenpinscher", "Basenji", "pug", "Leonberger", "Newfoundland dog",                # 251
    "Great Pyrenees dog", "Samoyed", "Pomeranian", "Chow Chow", "Keeshond", "brussels griffon",      # 257
    "Pembroke Welsh Corgi", "Cardigan Welsh Corgi", "Toy Poodle", "Miniature Poodle",                # 263
    "Standard Poodle", "Mexican hairless dog (xoloitzcuintli)", "grey wolf", "Alaskan tundra wolf",  # 267
    "red wolf or maned wolf", "coyote", "dingo", "dhole", "African wild dog", "hyena", "red fox",    # 271
    "kit fox", "Arctic fox", "grey fox", "tabby cat", "tiger cat", "Persian cat", "Siamese cat",     # 278
    "Egyptian Mau", "cougar", "lynx", "leopard", "snow leopard", "jaguar", "lion", "tiger",          # 285
    "cheetah", "brown bear", "American black bear", "polar bear", "sloth bear", "mongoose",          # 293
    "meerkat", "tiger beetle", "ladybug", "ground beetle", "longhorn beetle", "leaf beetle",         # 299
    "dung beetle", "rhinoceros beetle", "weevil", "fly", "bee", "ant", "grasshopper",                # 305
    "cricket insect", "stick insect", "cockroach", "praying mantis", "cicada", "leafhopper",         # 312
    "lacewing", "dragonfly", "damselfly", "red admiral butterfly", "ringlet butterfly",              # 318
    "monarch butterfly", "small white butterfly", "sulphur butterfly", "gossamer-winged butterfly",  # 323
    "starfish", "sea urchin", "sea cucumber", "cottontail rabbit", "hare", "Angora rabbit",          # 327
    "hamster", "porcupine", "fox squirrel", "marmot", "beaver", "guinea pig", "common sorrel horse", # 333
    "zebra", "pig", "wild boar", "warthog", "hippopotamus", "ox", "water buffalo", "bison",          # 340
    "ram (adult male sheep)", "bighorn sheep", "Alpine ibex", "hartebeest", "impala (antelope)",     # 348
    "gazelle", "arabian camel", "llama", "weasel", "mink", "European polecat",                       # 353
    "black-footed ferret", "otter", "skunk", "badger", "armadillo", "three-toed sloth", "orangutan", # 359
    "gorilla", "chimpanzee", "gibbon", "siamang", "guenon", "patas monkey", "baboon", "macaque",     # 366
    "langur", "black-and-white colobus", "proboscis monkey", "marmoset", "white-headed capuchin",    # 374
    "howler monkey", "titi monkey", "Geoffroy's spider monkey", "common squirrel monkey",            # 379
    "ring-tailed lemur", "indri", "Asian elephant", "African bush elephant", "red panda",            # 383
    "giant panda", "snoek fish", "eel", "silver salmon", "rock beauty fish", "clownfish",            # 388
    "sturgeon", "gar fish", "lionfish", "pufferfish", "abacus", "abaya", "academic gown",            # 394
    "accordion", "acoustic guitar", "aircraft carrier", "airliner", "airship", "altar", "ambulance", # 401
    "amphibious vehicle", "analog clock", "apiary", "apron", "trash can", "assault rifle",           # 408
    "backpack", "bakery", "balance beam", "balloon", "ballpoint pen", "Band-Aid", "banjo",           # 414
    "baluster / handrail", "barbell", "barber chair", "barbershop", "barn", "barometer", "barrel",   # 421
    "wheelbarrow", "baseball", "basketball", "bassinet", "bassoon", "swimming cap", "bath towel",    # 428
    "bathtub", "station wagon", "lighthouse", "beaker", "military hat (bearskin or shako)",          # 435
    "beer bottle", "beer glass", "bell tower", "baby bib", "tandem bicycle", "bikini",               # 440
    "ring binder", "binoculars", "birdhouse", "boathouse", "bobsleigh", "bolo tie", "poke bonnet",   # 446
    "bookcase", "bookstore", "bottle cap", "hunting bow", "bow tie", "brass memorial plaque", "bra", # 453
    "breakwater", "breastplate", "broom", "bucket", "buckle", "bulletproof vest",                    # 460
    "high-speed train", "butcher shop", "taxicab", "cauldron", "candle", "cannon", "canoe",          # 466
    "can opener", "cardigan", "car mirror", "carousel", "tool kit", "cardboard box / carton",        # 473
    "car wheel", "automated teller machine", "cassette", "cassette player", "castle", "catamaran",   # 479
    "CD player", "cello", "mobile phone", "chain", "chain-link fence", "chain mail", "chainsaw",     # 485
    "storage chest", "chiffonier", "bell or wind chime", "china cabinet", "Christmas stocking",      # 492
    "church", "movie theater", "cleaver", "cliff dwelling", "cloak", "clogs", "cocktail shaker",     # 497
    "coffee mug", "coffeemaker", "spiral or coil", "combination lock", "computer keyboard",          # 504
    "candy store", "container ship", "convertible", "corkscrew", "cornet", "cowboy boot",            # 509
    "cowboy hat", "cradle", "construction crane", "crash helmet", "crate", "infant bed",             # 515
    "Crock Pot", "croquet ball", "crutch", "cuirass", "dam", "desk", "desktop computer",             # 521
    "rotary dial telephone", "diaper", "digital clock", "digital watch", "dining table",             # 528
    "dishcloth", "dishwasher", "disc brake", "dock", "dog sled", "dome", "doormat", "drilling rig",  # 533
    "drum", "drumstick", "dumbbell", "Dutch oven", "electric fan", "electric guitar",                # 541
    "electric locomotive", "entertainment center", "envelope", "espresso machine", "face powder",    # 547
    "feather boa", "filing cabinet", "fireboat", "fire truck", "fire screen", "flagpole", "flute",   # 552
    "folding chair", "football helmet", "forklift", "fountain", "fountain pen", "four-poster bed",   # 559
    "freight car", "French horn", "frying pan", "fur coat", "garbage truck",                         # 565
    "gas mask or respirator", "gas pump", "goblet", "go-kart", "golf ball", "golf cart", "gondola",  # 570
    "gong", "gown", "grand piano", "greenhouse", "radiator grille", "grocery store", "guillotine",   # 577
    "hair clip", "hair spray", "half-track", "hammer", "hamper", "hair dryer", "hand-held computer", # 584
    "handkerchief", "hard disk drive", "harmonica", "harp", "combine harvester", "hatchet",          # 591
    "holster", "home theater", "honeycomb", "hook", "hoop skirt", "gymnastic horizontal bar",        # 597
    "horse-drawn vehicle", "hourglass", "iPod", "clothes iron", "carved pumpkin", "jeans", "jeep",   # 603
    "T-shirt", "jigsaw puzzle", "rickshaw", "joystick", "kimono", "knee pad", "knot", "lab coat",    # 610
    "ladle", "lampshade", "laptop computer", "lawn mower", "lens cap", "letter opener", "library",   # 618
    "lifeboat", "lighter", "limousine", "ocean liner", "lipstick", "slip-on shoe", "lotion",         # 625
    "music speaker", "loupe magnifying glass", "sawmill", "magnetic compass", "messenger bag",       # 632
    "mailbox", "tights", "one-piece bathing suit", "manhole cover", "maraca", "marimba", "mask",     # 637
    "matchstick", "maypole", "maze", "measuring cup", "medicine cabinet", "megalith", "microphone",  # 644
    "microwave oven", "military uniform", "milk can", "minibus", "miniskirt", "minivan", "missile",  # 651
    "mitten", "mixing bowl", "mobile home", "ford model t", "modem", "monastery", "monitor",         # 658
    "moped", "mortar and pestle", "graduation cap", "mosque", "mosquito net", "vespa",               # 665
    "mountain bike", "tent", "computer mouse", "mousetrap", "moving van", "muzzle", "metal nail",    # 671
    "neck brace", "necklace", "baby pacifier", "notebook computer", "obelisk", "oboe", "ocarina",    # 678
    "odometer", "oil filter", "pipe organ", "oscilloscope", "overskirt", "bullock cart",             # 685
    "oxygen mask", "product packet / packaging", "paddle", "paddle wheel", "padlock", "paintbrush",  # 691
    "pajamas", "palace", "pan flute", "paper towel", "parachute", "parallel bars", "park bench",     # 697
    "parking meter", "railroad car", "patio", "payphone", "pedestal", "pencil case",                 # 704
    "pencil sharpener", "perfume", "Petri dish", "photocopier", "plectrum", "Pickelhaube",           # 710
    "picket fence", "pickup truck", "pier", "piggy bank", "pill bottle", "pillow", "ping-pong ball", # 716
    "pinwheel", "pirate ship", "drink pitcher", "block plane", "planetarium", "plastic bag",         # 723
    "plate rack", "farm plow", "plunger", "Polaroid camera", "pole", "police van", "poncho",         # 729
    "pool table", "soda bottle", "plant pot", "potter's wheel", "power drill", "prayer rug",         # 736
    "printer", "prison", "missile", "projector", "hockey puck", "punching bag", "purse", "quill",    # 742
    "quilt", "race car", "racket", "radiator", "radio", "radio telescope", "rain barrel",            # 750
    "recreational vehicle", "fishing casting reel", "reflex camera", "refrigerator",                 # 757
    "remote control", "restaurant", "revolver", "rifle", "rocking chair", "rotisserie", "eraser",    # 761
    "rugby ball", "ruler measuring stick", "sneaker", "safe", "safety pin", "salt shaker", "sandal", # 768
    "sarong", "saxophone", "scabbard", "weighing scale", "school bus", "schooner", "scoreboard",     # 775
    "CRT monitor", "screw", "screwdriver", "seat belt", "sewing machine", "shield", "shoe store",    # 782
    "shoji screen / room divider", "shopping basket", "shopping cart", "shovel", "shower cap",       # 789
    "shower curtain", "ski", "balaclava ski mask", "sleeping bag", "slide rule", "sliding door",     # 794
    "slot machine", "snorkel", "snowmobile", "snowplow", "soap dispenser", "soccer ball", "sock",    # 800
    "solar thermal collector", "sombrero", "soup bowl", "keyboard space bar", "space heater",        # 807
    "space shuttle", "spatula", "motorboat", "spider web", "spindle", "sports car", "spotlight",     # 812
    "stage", "steam locomotive", "through arch bridge", "steel drum", "stethoscope", "scarf",        # 819
    "stone wall", "stopwatch", "stove", "strainer", "tram", "stretcher", "couch", "stupa",           # 825
    "submarine", "suit", "sundial", "sunglasses", "sunglasses", "sunscreen", "suspension bridge",    # 833
    "mop", "sweatshirt", "swim trunks / shorts", "swing", "electrical switch", "syringe",            # 840
    "table lamp", "tank", "tape player", "teapot", "teddy bear", "television", "tennis ball",        # 846
    "thatched roof", "front curtain", "thimble", "threshing machine", "throne", "tile roof",         # 853
    "toaster", "tobacco shop", "toilet seat", "torch", "totem pole", "tow truck", "toy store",       # 859
    "tractor", "semi-trailer truck", "tray", "trench coat", "tricycle", "trimaran", "tripod",        # 866
    "triumphal arch", "trolleybus", "trombone", "hot tub", "turnstile", "typewriter keyboard",       # 873
    "umbrella", "unicycle", "upright piano", "vacuum cleaner", "vase", "vaulted or arched ceiling",  # 879
    "velvet fabric", "vending machine", "vestment", "viaduct", "violin", "volleyball",               # 885
    "waffle iron", "wall clock", "wallet", "wardrobe", "military aircraft", "sink",                  # 891
    "washing machine", "water bottle", "water jug", "water tower", "whiskey jug", "whistle",         # 897
    "hair wig", "window screen", "window shade", "Windsor tie", "wine bottle", "airplane wing",      # 903
    "wok", "wooden spoon", "wool", "split-rail fence", "shipwreck", "sailboat", "yurt", "website",   # 909
    "comic book", "crossword", "traffic or street sign", "traffic light", "dust jacket", "menu",     # 917
    "plate", "guacamole", "consomme", "hot pot", "trifle", "ice cream", "popsicle", "baguette",      # 923
    "bagel", "pretzel", "cheeseburger", "hot dog", "mashed potatoes", "cabbage", "broccoli",         # 931
    "cauliflower", "zucchini", "spaghetti squash", "acorn squash", "butternut squash", "cucumber",   # 938
    "artichoke", "bell pepper", "cardoon", "mushroom", "Granny Smith apple", "strawberry", "orange", # 944
    "lemon", "fig", "pineapple", "banana", "jackfruit", "cherimoya (custard apple)", "pomegranate",  # 951
    "hay", "carbonara", "chocolate syrup", "dough", "meatloaf", "pizza", "pot pie", "burrito",       # 958
    "red wine", "espresso", "tea cup", "eggnog", "mountain", "bubble", "cliff", "coral reef",        # 966
    "geyser", "lakeshore", "promontory", "sandbar", "beach", "valley", "volcano", "baseball player", # 974
    "bridegroom", "scuba diver", "rapeseed", "daisy", "yellow lady's slipper", "corn", "acorn",      # 982
    "rose hip", "horse chestnut seed", "coral fungus", "agaric", "gyromitra", "stinkhorn mushroom",  # 989
    "earth star fungus", "hen of the woods mushroom", "bolete", "corn cob", "toilet paper",          # 995
)
