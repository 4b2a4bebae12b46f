"""SD card images and board deployment for the Ultra96-V2 running PYNQ 3.0.1.

- `images`: open .img / .img.xz / .zip images as one stream of raw bytes (sizes known up front).
- `devices`: what a target device is (lsblk), and why writing to it would be unsafe.
- `flash`: write an image to a card or a file (bmaptool or a streaming copy) and verify by reading back.
- `partitions`, `extfs`, `fatfs`: read the MBR and the file systems of an image file without root.
- `stage`, `manifest`, `firstboot`: put the overlay, model and package onto an image's partitions.
- `deploy`: copy the same files to a running board over ssh and install them there.
- `layout`: where things live on the board (shared by staging and deployment).
"""
