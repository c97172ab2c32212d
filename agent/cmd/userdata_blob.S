/* userdata_blob.S — userdata/cloud-config.yaml (the skeleton `mayfly userdata` fills in) and userdata/install.sh
 * (the script it embeds), built in so the user-data mayfly renders is exactly what userdata/ shows. Paths are
 * relative to the repository root (the Makefile passes it with -Wa,-I). */
        .section .rodata
        .global mayfly_userdata_cloud_config, mayfly_userdata_install_sh
mayfly_userdata_cloud_config:
        .incbin "userdata/cloud-config.yaml"
        .byte 0
mayfly_userdata_install_sh:
        .incbin "userdata/install.sh"
        .byte 0
        .section .note.GNU-stack,"",@progbits
