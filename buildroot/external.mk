include $(sort $(wildcard $(BR2_EXTERNAL_AMWI_PATH)/package/*/*.mk))
