"""The modeld demo site: a Django project whose web workers ask modeld for predictions."""
