/* units_blob.S — the systemd units in units/, embedded so `mayfly install-units` can write them
 * on an AMI where no package installed them. Paths are relative to the repository root (the Makefile passes it with -Wa,-I). */
        .section .rodata
        .global mayfly_unit_service, mayfly_unit_failsafe, mayfly_unit_backstop_service, mayfly_unit_backstop_timer
        .global mayfly_unit_scratch
mayfly_unit_service:
        .incbin "units/mayfly.service"
        .byte 0
mayfly_unit_failsafe:
        .incbin "units/mayfly-failsafe.service"
        .byte 0
mayfly_unit_backstop_service:
        .incbin "units/mayfly-backstop.service"
        .byte 0
mayfly_unit_backstop_timer:
        .incbin "units/mayfly-backstop.timer"
        .byte 0
mayfly_unit_scratch:
        .incbin "units/mayfly-scratch.service"
        .byte 0
        .section .note.GNU-stack,"",@progbits
