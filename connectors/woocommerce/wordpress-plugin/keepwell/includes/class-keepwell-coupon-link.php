<?php
/**
 * A link that applies a coupon: https://store.example/?keepwell_coupon=CODE.
 *
 * WooCommerce core has no URL that applies a coupon (its cart form and the wc-ajax
 * apply_coupon endpoint both take a POST with a nonce), so the "use it" button of a
 * customer's Keepwell page and referral links would only show the code. This adds the link:
 * the code is applied to the visitor's cart (a session is started when the cart is empty, so
 * the coupon waits for the first product) and the visitor lands on the cart without the
 * parameter. WooCommerce checks the coupon as it does when typed in (expiry, usage limits,
 * allowed emails at checkout) and shows its own notice. Keepwell uses it when the shop's
 * coupon_url_param setting is keepwell_coupon.
 *
 * @package Keepwell
 */

defined( 'ABSPATH' ) || exit;

/**
 * Applies ?keepwell_coupon=CODE to the cart, then redirects to the cart page.
 */
class Keepwell_Coupon_Link {

	const PARAM = 'keepwell_coupon';

	/**
	 * Hooks in once WordPress, WooCommerce and the session are loaded.
	 */
	public static function init() {
		add_action( 'wp_loaded', array( __CLASS__, 'apply' ), 30 );
	}

	/**
	 * The coupon code of the request, or '' when none.
	 *
	 * @return string
	 */
	private static function requested() {
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended -- a link in an email or text message: applying a coupon to one's own cart changes nothing else.
		if ( ! isset( $_GET[ self::PARAM ] ) || is_array( $_GET[ self::PARAM ] ) ) {
			return '';
		}
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended
		return wc_format_coupon_code( sanitize_text_field( wp_unslash( $_GET[ self::PARAM ] ) ) );
	}

	/**
	 * Apply the requested coupon and redirect to the cart without the parameter.
	 */
	public static function apply() {
		$code = self::requested();
		if ( '' === $code || ! function_exists( 'WC' ) || null === WC()->cart || null === WC()->session ) {
			return;
		}
		if ( ! WC()->session->has_session() ) {
			WC()->session->set_customer_session_cookie( true );
		}
		if ( ! WC()->cart->has_discount( $code ) ) {
			WC()->cart->apply_coupon( $code );
		}
		wp_safe_redirect( wc_get_cart_url() );
		exit;
	}
}
