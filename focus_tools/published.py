"""The statistics the paper published for the release (Kattakinda & Feizi 2022, Tables 1 and 2)."""

# Published statistics (Kattakinda & Feizi 2022). Table 1: images per class (columns in
# CLASS_NAMES order) for each attribute value; a multi-location image counts once per location.
PUBLISHED_TABLE1 = {
    "time": {
        "day": [1217, 2798, 1740, 1731, 2109, 2766, 2260, 1838, 1096, 2526],
        "night": [66, 304, 136, 167, 84, 66, 56, 57, 201, 58],
        "none": [32, 266, 99, 33, 997, 566, 88, 44, 370, 131],
    },
    "weather": {
        "cloudy": [189, 400, 314, 377, 79, 195, 248, 175, 18, 187],
        "foggy": [22, 115, 47, 106, 6, 44, 90, 55, 3, 48],
        "partly cloudy": [161, 363, 340, 307, 98, 184, 282, 159, 50, 170],
        "raining": [16, 161, 27, 10, 15, 11, 14, 3, 3, 21],
        "snowing": [13, 66, 3, 5, 29, 49, 49, 53, 0, 39],
        "sunny": [662, 1252, 850, 837, 768, 1266, 1183, 880, 503, 1297],
        "none": [252, 1011, 394, 289, 2195, 1649, 538, 614, 1090, 953],
    },
    "locations": {
        "forest": [185, 473, 179, 75, 90, 262, 519, 835, 117, 434],
        "grass": [355, 738, 397, 97, 532, 874, 1171, 1254, 293, 578],
        "indoors": [37, 311, 119, 3, 1451, 897, 76, 12, 37, 41],
        "rocks": [57, 119, 52, 67, 130, 114, 83, 86, 265, 192],
        "sand": [305, 596, 247, 181, 137, 451, 625, 186, 162, 315],
        "street": [702, 1811, 331, 96, 376, 386, 235, 74, 32, 124],
        "snow": [113, 308, 129, 157, 140, 357, 222, 306, 8, 192],
        "water": [65, 225, 354, 1728, 102, 433, 331, 135, 404, 611],
        "none": [90, 188, 673, 64, 524, 342, 245, 93, 555, 804],
    },
}
# Table 2: partition sizes. P1, P2 and P3 group the partitions by number of uncommon attributes.
# As published, P0 + P1 + P2 + P3 = 23904, two more than the total (which Table 1 confirms).
PUBLISHED_TABLE2 = {
    "total": 23902, "P0": 16692,
    "P1": 6530, "P(t)": 752, "P(w)": 597, "P(l)": 5181,
    "P2": 647, "P(t,w)": 51, "P(w,l)": 440, "P(t,l)": 156,
    "P3": 35, "P(t,w,l)": 35,
}
