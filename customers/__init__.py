"""What customers see and say: public ticket tracking without personal data, and feedback."""
